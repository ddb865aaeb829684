"""Every load-aware rule against a real Prometheus holding known values, through the real app.

One Prometheus (Debian's) scrapes an exporter this module serves: per node, the series the
rules read, with hand-picked values. node-00006 has none (missing); node-00007's are
stamped 60 s in the past, so a rule with ``maxAge: 30s`` finds them stale while the
source's own maxAge (2m) would not. Each test loads a policy holding one rule, waits for
the first refresh, and replays the recorded v1.30 full-node filter or prioritize of pod
web-1 (cpu limit 1, requests 250m / 256Mi). Expected answers are computed by hand in
the comments from each rule's documented arithmetic; node-00000's allocatable is 7920m
and 66608864Ki (capacity 8 cores), node-00001's 3920m and 16277216Ki (4 cores),
node-00002..4 as node-00000, node-00005 15920m and 33054432Ki (16 cores).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from extender.load.state import LoadState
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.web import create_app
from tests.conftest import eventually, fixture
from tests.load.prometheus_server import Prometheus, Target, prometheus

#: node -> (cpu 5m, 1h max, 1d max, mem 5m, 1h max, 1d max, cpu avg 1h, stddev 1h, mem avg 1h, stddev 1h, temp)
VALUES: dict[str, tuple[float, ...]] = {
    "node-00000": (20, 30, 40, 10, 20, 30, 20, 5, 10, 2, 50),
    "node-00001": (90, 80, 70, 50, 50, 50, 85, 10, 50, 5, 85),
    "node-00002": (50, 50, 50, 20, 20, 20, 50, 20, 20, 0, 60),
    "node-00003": (10, 10, 10, 80, 80, 80, 10, 1, 80, 1, 40),
    "node-00004": (35, 35, 35, 35, 35, 35, 35, 0, 35, 0, 70),
    "node-00005": (60, 60, 60, 10, 10, 10, 60, 10, 10, 10, 55),
    "node-00007": (5, 5, 5, 5, 5, 5, 5, 0, 5, 0, 30),  # stamped 60 s back
}
SERIES = (
    "test_cpu_usage_avg_5m", "test_cpu_usage_max_avg_1h", "test_cpu_usage_max_avg_1d",
    "test_mem_usage_avg_5m", "test_mem_usage_max_avg_1h", "test_mem_usage_max_avg_1d",
    "test_cpu_usage_avg_1h", "test_cpu_usage_stddev_1h", "test_mem_usage_avg_1h", "test_mem_usage_stddev_1h",
    "test_node_temperature_celsius",
)  # fmt: skip
STALE_NODE, OLD_BY = "node-00007", 60.0


def exposition() -> str:
    lines = []
    for index, name in enumerate(SERIES):
        lines.append(f"# TYPE {name} gauge")
        for node, values in VALUES.items():
            stamp = f" {int((time.time() - OLD_BY) * 1000)}" if node == STALE_NODE else ""
            lines.append(f'{name}{{node="{node}"}} {values[index]}{stamp}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    target = Target("nodes", {}, exposition)
    with prometheus(tmp_path_factory.mktemp("prometheus"), (target,)) as running:
        yield running


def policy(url: str, rules: str) -> str:
    # The crane names map to this module's series, except the temperature, which the promql
    # rules give as a PromQL expression of their own (a key that is not a query name).
    queries = "\n".join(f"      {name.removeprefix('test_')}: {name}" for name in SERIES[:-1])
    return f"""
sources:
  prometheus:
    type: prometheus
    url: {url}
    refreshInterval: 1s
    timeout: 1s
    queries:
{queries}
{rules}
"""


@pytest.fixture
def start(server: Prometheus) -> Iterator[Any]:
    apps: list[Flask] = []

    def started(rules: str) -> Flask:
        app = create_app(Settings(), policy=load_policy_text(policy(server.url, rules)))
        apps.append(app)

        def refreshed() -> bool:
            report = app.test_client().get("/healthz").get_json()["sources"]["prometheus"]
            return report["fetches"] >= 1 and all(count == len(VALUES) for count in report["series"].values())

        eventually(refreshed, timeout=20)
        return app

    yield started
    for app in apps:
        load: LoadState = app.extensions["extender.load"]
        load.stop()


def answered(app: Flask, verb: str, recording: str) -> Any:
    """The app's 200 answer to a recorded v1.30 full-node request."""
    response = app.test_client().post(
        f"/scheduler/{verb}", data=fixture("kube-scheduler-v1.30", "full-nodes", recording),
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 200
    return response.get_json()


def filtered(app: Flask) -> dict[str, Any]:
    answer: dict[str, Any] = answered(app, "filter", "00001-filter-web-1")
    return answer


def rejected(app: Flask) -> dict[str, str]:
    answer = filtered(app)
    passed = {node["metadata"]["name"] for node in answer["Nodes"]["items"]}
    failed = {**answer["FailedNodes"], **answer["FailedAndUnresolvableNodes"]}
    assert passed.isdisjoint(failed) and len(passed) + len(failed) == 8
    return failed


def scores(app: Flask) -> dict[str, int]:
    return {entry["Host"]: entry["Score"] for entry in answered(app, "prioritize", "00002-prioritize-web-1")}


def by_node(*values: int) -> dict[str, int]:
    return {f"node-0000{index}": value for index, value in enumerate(values)}


@pytest.mark.parametrize("on_stale", ["deny", "allow"])
def test_load_threshold(start: Any, on_stale: str) -> None:
    app = start(f"""
predicates:
- type: load-threshold
  params:
    onStale: {on_stale}
    maxAge: 30s
    thresholds:
    - {{metric: cpu_usage_avg_5m, max: 65}}
    - {{metric: mem_usage_avg_5m, max: 75}}
""")  # fmt: skip
    # node-00001 at 90 % cpu, node-00003 at 80 % memory; node-00006 missing, node-00007 stale
    expected = {
        "node-00001": "node(s) had cpu_usage_avg_5m above 65%",
        "node-00003": "node(s) had mem_usage_avg_5m above 75%",
    }
    if on_stale == "deny":
        expected |= {n: "node(s) had no fresh load metric cpu_usage_avg_5m" for n in ("node-00006", "node-00007")}
    assert rejected(app) == expected


def test_least_loaded(start: Any) -> None:
    app = start("priorities:\n- type: least-loaded\n  params: {maxAge: 30s}\n")
    # raw = 100 - (U_cpu + U_mem)/2 with U = 0.2*5m + 0.3*1h + 0.5*1d:
    # n0 100-(33+23)/2 = 72, n1 100-(77+50)/2 = 36.5, n2 65, n3 55, n4 65, n5 65;
    # normalised over 36.5..72: n2/n4/n5 8.03 -> 8, n3 5.21 -> 5; n6 (missing) and n7 (stale) neutral 5
    assert scores(app) == by_node(10, 0, 8, 5, 8, 8, 5, 5)


def test_target_load_packing(start: Any) -> None:
    app = start("priorities:\n- type: target-load-packing\n  params: {maxAge: 30s}\n")
    # the pod's predicted cpu = its limit, 1 core; U = 100 (cpu% x C + 1) / C with C the capacity:
    # n0 32.5 -> 60*32.5/40+40 = 88.75; n1 115 -> 0; n2 62.5 -> 40*37.5/60 = 25; n3 22.5 -> 73.75;
    # n4 47.5 -> 35; n5 66.25 -> 22.5; normalised over 0..88.75: 10 0 2.8 8.3 3.9 2.5; n6, n7 neutral
    assert scores(app) == by_node(10, 0, 3, 8, 4, 3, 5, 5)


def test_load_variation_risk(start: Any) -> None:
    app = start("priorities:\n- type: load-variation-risk\n  params: {maxAge: 30s}\n")
    # per resource (1 - (mean/100 + request/allocatable + stddev/100)/2) x 100, the worst one:
    # n0 cpu (1 - (0.2 + 0.25/7.92 + 0.05)/2) x 100 = 85.92; n1 cpu 49.31; n2 cpu 63.42;
    # n3 memory (1 - (0.8 + 256Mi/66608864Ki + 0.01)/2) x 100 = 59.30; n4 cpu 80.92; n5 cpu 64.21;
    # normalised over 49.31..85.92: 10 0 3.85 2.73 8.63 4.07; n6, n7 neutral
    assert scores(app) == by_node(10, 0, 4, 3, 9, 4, 5, 5)


@pytest.mark.parametrize("on_stale", ["allow", "deny"])
def test_promql_predicate(start: Any, on_stale: str) -> None:
    app = start(f"""
predicates:
- type: promql
  params:
    onStale: {on_stale}
    maxAge: 30s
    policies:
    - name: web-hot
      podSelector: {{matchLabels: {{app: web}}}}
      dontschedule:
        anyOf:
        - {{query: test_node_temperature_celsius, op: GreaterThan, threshold: 80}}
        - allOf:
          - {{query: cpu_usage_avg_5m, op: ">", threshold: 40}}
          - {{query: mem_usage_avg_5m, op: ">=", threshold: 20}}
""")  # fmt: skip
    # n1 is at 85 degrees; n2 at 50 % cpu and 20 % memory; n5 has the cpu (60) but not the memory (10)
    expected = {
        "node-00001": "node(s) violated promql policy web-hot: test_node_temperature_celsius > 80",
        "node-00002": "node(s) violated promql policy web-hot: cpu_usage_avg_5m > 40",
    }
    if on_stale == "deny":  # a stale first leaf of anyOf holds: the node is rejected
        expected |= {
            n: "node(s) violated promql policy web-hot: test_node_temperature_celsius stale"
            for n in ("node-00006", "node-00007")
        }
    assert rejected(app) == expected


def test_promql_priority(start: Any) -> None:
    app = start("""
priorities:
- type: promql
  params:
    maxAge: 30s
    policies:
    - name: cool-first
      podSelector: {matchLabels: {app: web}}
      scheduleonmetric: {query: test_node_temperature_celsius, op: LessThan}
""")
    # raw = -temperature: n0 -50, n1 -85, n2 -60, n3 -40, n4 -70, n5 -55; over -85..-40:
    # 7.8 0 5.6 10 3.3 6.7; n6 missing and n7 stale: neutral
    assert scores(app) == by_node(8, 0, 6, 10, 3, 7, 5, 5)


def test_the_source_maxage_keeps_a_60s_old_sample_fresh(start: Any) -> None:
    """Without the rule's 30s maxAge, node-00007's 60 s old samples are within the source's 2m:
    its 5 % cpu is read, and only the missing node-00006 is stale."""
    app = start("""
predicates:
- type: load-threshold
  params:
    onStale: deny
    thresholds: [{metric: cpu_usage_avg_5m, max: 4}]
""")
    failed = rejected(app)
    assert failed["node-00007"] == "node(s) had cpu_usage_avg_5m above 4%"
    assert failed["node-00006"] == "node(s) had no fresh load metric cpu_usage_avg_5m"


@pytest.mark.parametrize("fault", ["hanging", "down"])
def test_prometheus_failing_turns_into_the_stale_policy_and_recovers(start: Any, server: Prometheus, fault: str) -> None:
    """Prometheus hanging (SIGSTOP: connections accepted, nothing answered) or down: each
    refresh fails within its 1 s timeout, the samples pass the rule's 2 s maxAge, and every
    node gets onStale (deny) in 200 answers, quickly, the whole time; then it comes back."""
    app = start("""
predicates:
- type: load-threshold
  params:
    onStale: deny
    maxAge: 2s
    thresholds: [{metric: cpu_usage_avg_5m, max: 65}]
""")
    stale = "node(s) had no fresh load metric cpu_usage_avg_5m"
    healthy = {"node-00001": "node(s) had cpu_usage_avg_5m above 65%", "node-00007": stale, "node-00006": stale}
    assert rejected(app) == healthy
    server.pause() if fault == "hanging" else server.stop()
    try:
        def source() -> dict[str, Any]:
            report: dict[str, Any] = app.test_client().get("/healthz").get_json()["sources"]["prometheus"]
            return report

        # the samples may turn stale (2 s after they were scraped) before a fetch has timed out
        eventually(lambda: set(rejected(app).values()) == {stale} and source()["consecutiveFailures"] >= 1, timeout=20)
        slowest = 0.0
        for _ in range(20):  # answered from memory: a stuck fetch never holds a verb
            began = time.monotonic()
            assert len(rejected(app)) == 8
            slowest = max(slowest, time.monotonic() - began)
        assert slowest < 0.5, "a hang detector: verbs must not wait on the source"
        assert source()["lastError"]
    finally:
        server.resume() if fault == "hanging" else server.start()
    eventually(lambda: rejected(app) == healthy, timeout=30)
