"""Metric sources through the real app: a metrics-server source against the fake API server,
read by test-local rules through ``ctx.load``; a cluster without metrics-server; a stuck fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema

from extender.load.state import LoadState
from extender.measured import MetricRef
from extender.policy import load_policy_text
from extender.sdk import Context, NodeView, PodView
from extender.sdk.load import fresh_sample, on_stale_field, source_field
from extender.sdk.rules import NEUTRAL, Predicate, Priority, Rejection, Neutral
from extender.settings import Settings
from extender.web import create_app
from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import write_kubeconfig


class CpuParams(Schema):
    source = source_field()
    on_stale = on_stale_field("priority")


class BusyParams(Schema):
    source = source_field()
    on_stale = on_stale_field("predicate")


class LowCpuFirst(Priority):
    """Test-local: the lower the node's cpu percent, the better; NEUTRAL without a fresh sample."""

    params_schema = CpuParams

    def metrics(self) -> tuple[MetricRef, ...]:
        return (MetricRef(self.params["source"], "cpu"),)

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | Neutral | None:
        sample = fresh_sample(ctx, self.metrics()[0], node.name)
        return NEUTRAL if sample is None else -sample.value


class NotBusy(Predicate):
    """Test-local: rejects nodes above 80% cpu; passes nodes without a fresh sample."""

    params_schema = BusyParams

    def metrics(self) -> tuple[MetricRef, ...]:
        return (MetricRef(self.params["source"], "cpu"),)

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        sample = fresh_sample(ctx, self.metrics()[0], node.name)
        return Rejection("node(s) busy") if sample is not None and sample.value > 80 else None


def policy(refresh: str = "1s", timeout: str = "1s") -> str:
    here = __name__
    return f"""
version: 1
sources:
  metrics: {{type: metrics-server, refreshInterval: {refresh}, maxAge: 1m, timeout: {timeout}}}
predicates:
- {{name: not-busy, type: "{here}:NotBusy", params: {{source: metrics}}}}
priorities:
- {{name: low-cpu, type: "{here}:LowCpuFirst", weight: 1, params: {{source: metrics, onStale: neutral}}}}
"""


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def start(apiserver: FakeApiServer, tmp_path: Path, text: str) -> Flask:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    app = create_app(Settings(node_cache=True, kubeconfig=str(kubeconfig)), policy=load_policy_text(text))
    cluster = app.extensions["extender.cluster"]
    assert cluster.wait_synced(10)
    return app


def stop(app: Flask) -> None:
    load: LoadState = app.extensions["extender.load"]
    load.stop()
    app.extensions["extender.cluster"].stop()


def health(app: Flask) -> dict[str, Any]:
    source: dict[str, Any] = app.test_client().get("/healthz").get_json()["sources"]["metrics"]
    return source


def call(app: Flask, verb: str, stem: str) -> Any:
    response = app.test_client().post(f"/scheduler/{verb}", data=fixture("kube-scheduler-v1.24", "node-cache", stem),
                                      content_type="application/json")  # fmt: skip
    assert response.status_code == 200
    return response.get_json()


def test_filter_and_prioritize_answer_from_refreshed_metrics(apiserver: FakeApiServer, tmp_path: Path) -> None:
    apiserver.set_node_metrics("node-00001", "3528m", "1Gi")  # 90% of 3920m
    apiserver.set_node_metrics("node-00002", "792m", "1Gi")  # 10% of 7920m
    apiserver.set_node_metrics("node-00003", "3960m", "1Gi")  # 50%
    app = start(apiserver, tmp_path, policy())
    try:
        eventually(lambda: health(app)["fetches"] >= 1 and health(app)["series"]["cpu"] == 3, timeout=10)
        filtered = call(app, "filter", "00001-filter-gpu-1")
        assert filtered["FailedAndUnresolvableNodes"] == {"node-00001": "node(s) busy"}
        assert "node-00002" in filtered["NodeNames"] and "node-00003" in filtered["NodeNames"]
        scores = {p["Host"]: p["Score"] for p in call(app, "prioritize", "00002-prioritize-gpu-1")}
        assert scores["node-00002"] > scores["node-00003"] > scores["node-00001"]
        assert scores["node-00000"] == 5  # no metrics: onStale neutral
        # a new value reaches the verbs on the next refresh
        apiserver.set_node_metrics("node-00001", "392m", "1Gi")  # 10%
        eventually(lambda: "node-00001" in call(app, "filter", "00001-filter-gpu-1")["NodeNames"], timeout=10)
        report = health(app)
        assert report["lastError"] is None and report["consecutiveFailures"] == 0
        assert report["staleNodes"]["cpu"] == 5  # of the 8 cached nodes, 5 have no metrics
    finally:
        stop(app)


def test_a_cluster_without_metrics_server_degrades_logs_once_and_says_why(
    apiserver: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, "extender.load"):
        app = start(apiserver, tmp_path, policy())
        try:
            eventually(lambda: health(app)["fetches"] >= 3, timeout=15)
            filtered = call(app, "filter", "00001-filter-gpu-1")
            assert len(filtered["NodeNames"]) == 8  # onStale allow: every node passes
            scores = {p["Host"]: p["Score"] for p in call(app, "prioritize", "00002-prioritize-gpu-1")}
            assert set(scores.values()) == {5}
            report = health(app)
            assert "metrics.k8s.io is not served" in report["lastError"]
            assert report["consecutiveFailures"] >= 3
            assert app.test_client().get("/readyz").status_code == 200  # sources never affect readiness
        finally:
            stop(app)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "not served" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    # The first fetch may run before the node cache has synced (no known node is stale
    # yet); the later lines, logged at DEBUG while the error is unchanged, name the rules.
    lines = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
    assert any("low-cpu (onStale neutral)" in line and "8 node(s) without a fresh sample" in line for line in lines)


def test_a_stuck_fetch_never_delays_a_verb(apiserver: FakeApiServer, tmp_path: Path) -> None:
    apiserver.set_node_metrics("node-00002", "792m", "1Gi")
    apiserver.delay_next("/apis/metrics.k8s.io", 10, times=100)
    app = start(apiserver, tmp_path, policy(refresh="10s", timeout="10s"))
    try:
        eventually(lambda: any(r.path.startswith("/apis/metrics.k8s.io") for r in apiserver.requests), timeout=10)
        for stem, verb in (("00001-filter-gpu-1", "filter"), ("00002-prioritize-gpu-1", "prioritize")):
            started = time.monotonic()
            call(app, verb, stem)
            assert time.monotonic() - started < 1.0, f"{verb} waited on the stuck fetch"
        assert health(app)["fetches"] == 0, "the fetch was still in flight"
    finally:
        apiserver.clear_delays()
        stop(app)


def test_healthz_lists_no_sources_without_a_sources_section() -> None:
    app = create_app(Settings(), policy=load_policy_text("version: 1\n"))
    body = json.loads(app.test_client().get("/healthz").data)
    assert body == {"status": "ok"}
    assert app.extensions["extender.load"] is None


def test_full_node_mode_builds_the_api_config_for_metrics_server_and_maps_seen_nodes(
    apiserver: FakeApiServer, tmp_path: Path
) -> None:
    apiserver.set_node_metrics("node-00001", "3528m", "1Gi")  # 90% of 3920m
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    settings = Settings(kubeconfig=str(kubeconfig))  # no caches, no bind: only the source needs the API
    app = create_app(settings, policy=load_policy_text(policy()))
    try:
        assert app.extensions["extender.cluster"].reflectors == []
        eventually(lambda: health(app)["fetches"] >= 1, timeout=10)
        assert health(app)["series"] == {"cpu": 0}  # no node seen yet: no allocatable to divide by
        body = fixture("kube-scheduler-v1.24", "full-nodes", "00001-filter-web-1")
        client = app.test_client()
        assert client.post("/scheduler/filter", data=body, content_type="application/json").status_code == 200
        eventually(lambda: health(app)["series"] == {"cpu": 1}, timeout=10)  # mapped through the seen node
        filtered = client.post("/scheduler/filter", data=body, content_type="application/json").get_json()
        assert "node-00001" in filtered["FailedAndUnresolvableNodes"]
    finally:
        stop(app)


def test_serve_with_a_metrics_server_source_refuses_to_start_without_api_access(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_", "KUBECONFIG"))}
    env["HOME"] = str(tmp_path)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy())
    result = subprocess.run(
        [sys.executable, "-m", "extender", "serve", "--policy", str(policy_file)],
        capture_output=True, text=True, env=env, timeout=30, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Kubernetes API access is needed (a metrics-server source) but " in result.stderr
