"""``GET /metrics``: exact values after a known sequence of verb calls, summed over the workers
of a real multi-worker ``extender serve``; a worker that exits is marked dead. In process
(the Flask test client, one registry): the decision record, rule timing, sources and policy
functions the other components call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from extender.telemetry import metrics
from tests.conftest import eventually, fixture, make_app
from tests.live_server import Server, running_server

FULL = "kube-scheduler-v1.30", "full-nodes"
NAMES = "kube-scheduler-v1.30", "node-cache"
#: one round of calls: (verb, body, Content-Type, expected outcome)
ROUND: list[tuple[str, bytes, str, str]] = [
    ("filter", fixture(*FULL, "00001-filter-web-1"), "application/json", "ok"),
    ("prioritize", fixture(*FULL, "00002-prioritize-web-1"), "application/json", "ok"),
    ("preempt", fixture(*FULL, "00007-preempt-urgent-1"), "application/json", "ok"),
    ("filter", fixture(*NAMES, "00001-filter-gpu-1"), "application/json", "ok"),
    ("prioritize", fixture(*NAMES, "00002-prioritize-gpu-1"), "application/json", "ok"),
    # the default policy does not enable bind: an Error answer (HTTP 200)
    ("bind", fixture(*NAMES, "00003-bind-gpu-1"), "application/json", "error-answer"),
    ("filter", b'{"Pod": ', "application/json", "bad-request"),
    ("prioritize", fixture(*NAMES, "00002-prioritize-gpu-1"), "text/plain", "bad-request"),
]


def node_count(body: bytes) -> int | None:
    """Nodes (or candidates) a call carries, as the service counts them; None: not decoded."""
    try:
        args = json.loads(body)
    except ValueError:
        return None
    if "PodName" in args:
        return None  # bind carries one node name, not a node list
    if "NodeNameToMetaVictims" in args or "NodeNameToVictims" in args:
        return len(args.get("NodeNameToMetaVictims") or args.get("NodeNameToVictims") or {})
    return len((args.get("Nodes") or {}).get("items") or []) if args.get("Nodes") else len(args.get("NodeNames") or [])


def one_rounds_records() -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]]]:
    """The decision records of one :data:`ROUND` through an in-process app on the embedded
    default policy (what the server runs): per (verb, outcome), and rejections per (verb,
    rule, reason)."""
    from extender.settings import Settings
    from extender.web.app import create_app

    seen: list[dict[str, Any]] = []
    client = create_app(Settings(), observers=[seen.append]).test_client()
    for verb, body, content_type, _ in ROUND:
        client.post(f"/scheduler/{verb}", data=body, content_type=content_type)
    decisions = Counter((r["verb"], r["outcome"]) for r in seen)
    rejections: Counter[tuple[str, str, str]] = Counter()
    for r in seen:
        for group in r.get("rejected") or ():
            rejections[r["verb"], group["rule"], group["reason"]] += group["count"]
    return decisions, rejections


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``url``/metrics, parsed by prometheus_client's own parser."""
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_files(metrics_dir: Path, prefix: str) -> set[int]:
    """PIDs with a ``<prefix>_<pid>.db`` file: the workers that wrote that kind of value."""
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob(f"{prefix}_*.db")}


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    runtime = tmp_path / "runtime"
    with running_server(tmp_path, "--workers", "2", "--runtime-dir", str(runtime)) as server:
        eventually(lambda: len(server.worker_pids()) == 2)
        yield server, runtime / "metrics"


def test_metrics_sum_a_known_sequence_over_two_workers_and_drop_a_dead_worker_s_gauges(
    two_workers: tuple[Server, Path],
) -> None:
    server, metrics_dir = two_workers
    workers = set(server.worker_pids())
    # each worker sets its policy_info once its app is built (the server is ready with one)
    eventually(lambda: worker_files(metrics_dir, "gauge_livemax") == workers)
    # Each call on a new connection; which worker accepts it is the kernel's choice, so
    # rounds go on until both have answered (each writes its own histogram file).
    rounds = 0
    while rounds < 3 or not workers <= worker_files(metrics_dir, "histogram"):
        assert rounds < 100, f"one worker took every connection: {worker_files(metrics_dir, 'histogram')}"
        for verb, body, content_type, _ in ROUND:
            requests.post(f"{server.url}/scheduler/{verb}", data=body, headers={"Content-Type": content_type}, timeout=10)
        rounds += 1

    samples = scrape(server.url)
    calls = Counter((verb, outcome) for verb, _, _, outcome in ROUND)
    for (verb, outcome), count in calls.items():
        assert value(samples, "extender_request_duration_seconds_count", verb=verb, outcome=outcome) == count * rounds
        assert value(samples, "extender_request_duration_seconds_bucket", verb=verb, outcome=outcome, le="+Inf") == count * rounds
        assert value(samples, "extender_request_duration_seconds_sum", verb=verb, outcome=outcome) > 0
    assert value(samples, "extender_request_duration_seconds_count", verb="bind", outcome="ok") == 0
    for verb in ("filter", "prioritize", "preempt", "bind"):
        sent = [body for v, body, _, _ in ROUND if v == verb]
        assert value(samples, "extender_request_bytes_sum", verb=verb) == sum(map(len, sent)) * rounds
        assert value(samples, "extender_request_bytes_count", verb=verb) == len(sent) * rounds
        counted = [n for v, body, ctype, outcome in ROUND if v == verb and outcome == "ok" and (n := node_count(body)) is not None]
        assert value(samples, "extender_request_nodes_count", verb=verb) == len(counted) * rounds
        assert value(samples, "extender_request_nodes_sum", verb=verb) == sum(counted) * rounds
        for bound in (10, 100):  # cumulative buckets
            expected = sum(1 for n in counted if n <= bound) * rounds
            assert value(samples, "extender_request_nodes_bucket", verb=verb, le=f"{float(bound)}") == expected
    assert value(samples, "extender_binds_total", outcome="not-enabled") == rounds
    # The decision records of every worker: one round's, as an in-process service makes them.
    decisions, rejections = one_rounds_records()
    assert decisions and rejections
    for (verb, outcome), count in decisions.items():
        assert value(samples, "extender_decisions_total", verb=verb, outcome=outcome) == count * rounds
    for (verb, rule, reason), count in rejections.items():
        assert value(samples, "extender_rejections_total", verb=verb, rule=rule, reason=reason) == count * rounds
    digest = requests.get(f"{server.url}/version", timeout=10).json()["policy"]["digest"]
    assert value(samples, "extender_policy_info", digest=digest) == 1
    assert value(samples, "extender_policy_reloads_total", outcome="success") == 0

    # A worker exits: gunicorn replaces it; its live gauges go, its counts stay in the sums.
    gone = min(workers)
    os.kill(gone, signal.SIGTERM)
    eventually(lambda: gone not in server.worker_pids() and len(server.worker_pids()) == 2)
    eventually(lambda: gone not in worker_files(metrics_dir, "gauge_livemax"))
    assert gone in worker_files(metrics_dir, "histogram")
    after = scrape(server.url)
    for (verb, outcome), count in calls.items():
        assert value(after, "extender_request_duration_seconds_count", verb=verb, outcome=outcome) == count * rounds
    eventually(lambda: value(scrape(server.url), "extender_policy_info", digest=digest) == 1)


def test_the_default_runtime_directory_is_private_and_removed_at_exit(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "1") as server:
        eventually(lambda: "runtime directory " in server.log_text())
        line = next(line for line in server.log_text().splitlines() if "runtime directory " in line)
        runtime = Path(line.split("runtime directory ", 1)[1].split()[0])
        assert runtime.is_dir() and runtime.stat().st_mode & 0o777 == 0o700
        if Path("/dev/shm").is_dir():
            assert runtime.parent == Path("/dev/shm")
        requests.post(f"{server.url}/scheduler/filter", data=ROUND[0][1], timeout=10)
        eventually(lambda: bool(list((runtime / "metrics").glob("histogram_*.db"))))
    assert not runtime.exists()


def test_a_given_runtime_directory_has_its_metrics_emptied_at_start_and_is_kept(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "metrics").mkdir(parents=True)
    (runtime / "metrics" / "counter_1.db").write_bytes(b"left by an earlier run")
    (runtime / "decisions").mkdir()  # another component's: left alone
    with running_server(tmp_path, "--workers", "1", "--runtime-dir", str(runtime)) as server:
        assert not (runtime / "metrics" / "counter_1.db").exists()
        assert scrape(server.url)  # the old file would not parse
    assert (runtime / "metrics").is_dir() and (runtime / "decisions").is_dir()


# -- in process: one registry, the functions other components call --------------------------


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_flask_app_serves_metrics_without_gunicorn() -> None:
    client = make_app().test_client()
    before = sample("extender_request_duration_seconds_count", verb="filter", outcome="bad-request")
    assert client.post("/scheduler/filter", data=b"[", content_type="application/json").status_code == 400
    assert client.post("/scheduler/filter", data=b"{}", content_type="text/html").status_code == 415
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    parsed = {s.name: s for f in text_string_to_metric_families(response.text) for s in f.samples if s.labels.get("outcome") == "bad-request" and s.labels.get("verb") == "filter"}
    assert parsed["extender_request_duration_seconds_count"].value == before + 2


def test_observe_decision_counts_rejections_per_rule_and_reason_and_shadow_would_rejects() -> None:
    reason = "node(s) had condition KernelDeadlock=True"
    before = sample("extender_rejections_total", verb="filter", rule="node-condition", reason=reason)
    shadow_before = sample("extender_shadow_rejections_total", rule="maint-shadow")
    record: dict[str, Any] = {
        "verb": "filter", "time": "2026-12-07T16:55:01.123456Z", "pod": {"namespace": "default", "name": "gpu-1", "uid": "u"},
        "mode": "names", "policy": "abc", "nodes": 8, "outcome": "answered", "tookMs": 0.41, "passed": 5,
        "rejected": [
            {"rule": "node-condition", "reason": reason, "resolvable": False, "count": 3, "nodes": ["n1", "n2", "n3"]},
            {"rule": "node-maintenance", "reason": "node(s) in maintenance", "resolvable": True, "count": 0, "nodes": []},
        ],
        "unknown": 0, "shadow": [{"rule": "maint-shadow", "wouldReject": 2}],
    }  # fmt: skip
    metrics.observe_decision(record)
    metrics.observe_decision({**record, "verb": "preempt", "shadow": []})
    assert sample("extender_rejections_total", verb="filter", rule="node-condition", reason=reason) == before + 3
    assert sample("extender_rejections_total", verb="preempt", rule="node-condition", reason=reason) >= 3
    assert sample("extender_rejections_total", verb="filter", rule="node-maintenance", reason="node(s) in maintenance") == 0
    assert sample("extender_shadow_rejections_total", rule="maint-shadow") == shadow_before + 2
    # a prioritize record has neither key; an error record neither
    decisions = sample("extender_decisions_total", verb="prioritize", outcome="error")
    metrics.observe_decision({"verb": "prioritize", "outcome": "error", "nodes": 3})
    assert sample("extender_decisions_total", verb="prioritize", outcome="error") == decisions + 1


def test_rule_seconds_policy_reloads_and_sources() -> None:
    count = sample("extender_rule_evaluation_seconds_count", rule="node-cost")
    metrics.observe_rule_seconds("node-cost", 0.002)
    assert sample("extender_rule_evaluation_seconds_count", rule="node-cost") == count + 1
    assert sample("extender_rule_evaluation_seconds_bucket", rule="node-cost", le="0.005") >= 1

    ok, failed = sample("extender_policy_reloads_total", outcome="success"), sample("extender_policy_reloads_total", outcome="failure")
    metrics.policy_loaded("digest-a", reload=False)
    metrics.policy_loaded("digest-b")
    metrics.policy_reload_failed()
    assert sample("extender_policy_info", digest="digest-a") == 0
    assert sample("extender_policy_info", digest="digest-b") == 1
    assert sample("extender_policy_reloads_total", outcome="success") == ok + 1
    assert sample("extender_policy_reloads_total", outcome="failure") == failed + 1

    errors = sample("extender_source_fetch_errors_total", source="prom")
    metrics.source_fetched("prom", True, 1000.0, 990.0, 120.0)
    metrics.source_fetched("prom", False, 1030.0, 990.0, 120.0)
    assert sample("extender_source_fetch_errors_total", source="prom") == errors + 1
    assert sample("extender_source_last_success_timestamp_seconds", source="prom") == 1000.0
    assert sample("extender_source_newest_sample_timestamp_seconds", source="prom") == 990.0
    assert sample("extender_source_max_age_seconds", source="prom") == 120.0


def test_serve_refuses_a_runtime_directory_it_cannot_make(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "extender", "serve", "--runtime-dir", str(blocker / "runtime")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("extender: refusing to start: runtime directory: ")
    assert str(blocker / "runtime") in result.stderr


def test_verb_calls_feed_the_rule_and_rejection_series() -> None:
    """The service's observers and the engine's timing reach /metrics: the README's example
    filter (examples/) rejects node-b and node-c by node-condition; the engine times one call
    in eight, so eight calls time each predicate once."""
    root = Path(__file__).resolve().parents[1]
    client = make_app((root / "examples" / "policy.yaml").read_text()).test_client()
    body = (root / "examples" / "filter.json").read_bytes()
    reason = "node(s) had condition Ready=False"
    rejected = sample("extender_rejections_total", verb="filter", rule="node-condition", reason=reason)
    timed = sample("extender_rule_evaluation_seconds_count", rule="node-condition")
    for _ in range(8):
        assert client.post("/scheduler/filter", data=body, content_type="application/json").status_code == 200
    assert sample("extender_rejections_total", verb="filter", rule="node-condition", reason=reason) == rejected + 8
    assert sample("extender_rule_evaluation_seconds_count", rule="node-condition") == timed + 1
    assert sample("extender_rule_evaluation_seconds_sum", rule="node-condition") > 0
