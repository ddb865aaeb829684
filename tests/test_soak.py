"""A short soak (the CI version of ``python -m benchmarks.soak``): every verb of both modes,
probes, malformed and slow clients, several at once, against a real server; every answer as
expected, and memory and descriptors flat. The bounds are on resources, not on speed."""

from __future__ import annotations

from benchmarks import soak


def test_a_short_mixed_soak_has_no_unexpected_answer_and_leaks_nothing() -> None:
    report = soak.run(4000, clients=4, slow=10, samples=4, log=lambda line: None)
    summary = report.summary()
    assert report.unexpected == [], report.unexpected[:10]
    assert report.requests == 4000
    assert set(report.by_kind) == {kind.name for kind in soak.mix({("default", "gpu-1"): "uid"})}, "every kind was sent"
    assert report.oversize_refused > 0 and report.tricklers_refused > 0, "slow and oversize clients were refused"
    # Descriptors are counted with every client connection closed. A worker opens its API
    # connections lazily (the binder's pool: one per bind in flight at once, up to 4 here), so
    # they may still grow after the first batch on a loaded machine, where more binds overlap
    # (seen: +2 between the second and the last sample), up to the pool's 4; a leak grows with
    # the requests: thousands here.
    second, last = report.samples[1].fds, report.samples[-1].fds
    assert all(last[p] - second[p] <= 4 for p in second), (second, last)
    assert summary["fd_growth_max"] <= 6, summary["fds_first_last"]
    # The heap settles within the first thousands of requests (100k measured: +1.6 MiB).
    assert summary["rss_growth_mib_max"] < 16, summary["rss_mib_first_last"]
