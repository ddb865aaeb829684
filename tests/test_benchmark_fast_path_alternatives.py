"""The serving-path alternatives benchmark, reduced: every variant serves every call well.
Behaviour only: no timing is asserted (run ``python -m benchmarks.fast_path_alternatives``)."""

from __future__ import annotations

from benchmarks.fast_path_alternatives import run, table
from benchmarks.variant_serve import VARIANTS


def test_every_variant_answers_every_call_and_the_table_shows_them() -> None:
    results = run(None, rounds=1, count=20, sizes=[50], nodes=200, warmup=3)
    assert list(results) == list(VARIANTS)
    for label, by_name in results.items():
        assert list(by_name) == ["GET /healthz", "filter, 0 names", "filter, 50 names", "prioritize, 50 names"], label
        for name, (measured,) in by_name.items():
            assert measured.statuses == {200: 20} and measured.malformed == 0, (label, name)
            assert measured.cpu_ms_per_call >= 0
    text = table(results)
    assert all(label in text for label in VARIANTS) and "!" not in text.split("\n\n")[1].split("! marks")[0]
