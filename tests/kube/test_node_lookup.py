"""Preempt's API lookup of candidates the extender knows nothing about, against the fake API
server: found, 404, 403, slower than the deadline; each failure logged once; and the lookup
order (node cache, seen nodes, API) through the app."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from extender.kube.client import KubeClient
from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.node_lookup import NodeLookup
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.web import create_app
from tests.conftest import fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.records import decision_records, rejected_count
from tests.test_preempt import BATCH, POLICY

VERSION = "kube-scheduler-v1.30"


def config_for(server: FakeApiServer) -> ClusterConfig:
    return ClusterConfig(server=server.url, token_source=StaticToken("test-token"), source="fake")


@pytest.fixture
def lookup(apiserver: FakeApiServer) -> Iterator[NodeLookup]:
    found = NodeLookup(KubeClient(config_for(apiserver)), timeout=1.0)
    yield found
    found.close()


def node_gets(server: FakeApiServer) -> list[str]:
    return sorted(r.path.rsplit("/", 1)[1] for r in server.requests if r.path.startswith("/api/v1/nodes/"))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "extender.kube"]


def test_found_nodes_come_back_as_views_with_their_resource_versions(
    lookup: NodeLookup, apiserver: FakeApiServer
) -> None:
    views = lookup.fetch(["node-00003", "node-00000", "node-00003"])
    assert sorted(views) == ["node-00000", "node-00003"]
    stored = apiserver.nodes["node-00003"]["metadata"]
    assert views["node-00003"].resource_version == stored["resourceVersion"]
    assert views["node-00003"].labels["node-pool"] == "gpu"
    assert node_gets(apiserver) == ["node-00000", "node-00003"], "one GET per distinct name"
    assert all(r.headers["Authorization"] == "Bearer test-token" for r in apiserver.requests)


def test_a_404_is_unknown_and_logged_once(
    lookup: NodeLookup, apiserver: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="extender.kube"):
        assert sorted(lookup.fetch(["node-00099", "node-00001"])) == ["node-00001"]
        assert sorted(lookup.fetch(["node-00099"])) == []
    (line,) = warnings(caplog)
    assert line.startswith("preempt node lookup of node-00099 failed (not found): the node was deleted")
    assert line.endswith("such candidates count as unknown (logged once)")


def test_a_403_is_unknown_and_logged_once_per_process_with_the_rbac_fix(
    lookup: NodeLookup, apiserver: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.fail_next("GET", "/api/v1/nodes/", 403, times=4)
    with caplog.at_level(logging.WARNING, logger="extender.kube"):
        assert lookup.fetch(["node-00001", "node-00002"]) == {}
        assert lookup.fetch(["node-00003", "node-00004"]) == {}
    (line,) = warnings(caplog)
    assert line.startswith("preempt node lookup failed (forbidden): GET /api/v1/nodes/node-0000")
    assert "grant get on nodes (deploy/components/preempt-node-lookup)" in line
    assert sorted(lookup.fetch(["node-00001"])) == ["node-00001"], "once RBAC allows it, lookups work"


def test_a_closed_lookup_finds_nothing_instead_of_failing_the_call(lookup: NodeLookup) -> None:
    lookup.close()  # the worker is shutting down (ClusterState.stop) while a preempt call is in flight
    assert lookup.fetch(["node-00001"]) == {}


def test_a_node_slower_than_the_deadline_is_unknown_and_the_rest_still_found(
    apiserver: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.delay_next("/api/v1/nodes/node-00005", 30.0)
    quick = NodeLookup(KubeClient(config_for(apiserver)), timeout=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="extender.kube"):
            assert sorted(quick.fetch(["node-00004", "node-00005"])) == ["node-00004"]
        # It answered while the API server was still holding the slow GET (a deadline, not a speed).
        (slow,) = [r for r in apiserver.requests if r.path == "/api/v1/nodes/node-00005"]
        assert slow.status is None
        (line,) = warnings(caplog)
        assert line.startswith("preempt node lookup of node-00005 failed (timeout)")
    finally:
        quick.close()


class CountingClient:
    """A KubeClient stand-in that records how many GETs overlap."""

    def __init__(self, body: bytes) -> None:
        self.body, self.in_flight, self.most = body, 0, 0
        self.lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
        name = path.rsplit("/", 1)[1]
        return type("Response", (), {"content": self.body.replace(b'"name":"node-00000"', f'"name":"{name}"'.encode())})


def test_concurrency_is_bounded(apiserver: FakeApiServer) -> None:
    body = json.dumps(apiserver.nodes["node-00000"], separators=(",", ":")).encode()
    client = CountingClient(body)
    bounded = NodeLookup(client, timeout=30.0, concurrency=3)  # type: ignore[arg-type]
    try:
        names = [f"n{i}" for i in range(20)]
        assert sorted(bounded.fetch(names)) == sorted(names)
        assert 1 <= client.most <= 3
    finally:
        bounded.close()


# -- through the app: the lookup order ---------------------------------------------------------


def app_with_lookup(server: FakeApiServer, **settings: Any) -> tuple[FlaskClient, ClusterState]:
    values = {"preempt_node_lookup": True, **settings}
    cluster = ClusterState(
        config_for(server), ClusterOptions(nodes=values.get("node_cache", False), node_lookup=True, node_lookup_timeout=1.0)
    )
    app = create_app(Settings(**values), policy=load_policy_text(POLICY), cluster=cluster)
    return app.test_client(), cluster


def preempt(client: FlaskClient, body: bytes | None = None) -> list[str]:
    body = body or fixture(VERSION, "full-nodes", "00007-preempt-urgent-1")
    return sorted(json.loads(client.post("/scheduler/preempt", data=body).data)["NodeNameToMetaVictims"])


def test_full_node_preempt_fetches_unseen_candidates_then_remembers_them(
    apiserver: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    client, cluster = app_with_lookup(apiserver)
    try:
        client.post("/scheduler/filter", data=fixture(VERSION, "full-nodes", "00005-filter-db-1"))
        with caplog.at_level(logging.INFO, logger="extender.decisions"):
            assert preempt(client) == BATCH
        assert node_gets(apiserver) == ["node-00002", "node-00005"], "only what the filter request did not carry"
        (record,) = decision_records((r.getMessage() for r in caplog.records), "preempt")
        assert (record["kept"], record["droppedCount"], rejected_count(record)) == (4, 4, 4)
        assert (record["unknown"], record["fetched"]) == (0, 2)
        apiserver.requests.clear()
        assert preempt(client) == BATCH
        assert node_gets(apiserver) == [], "fetched nodes joined the seen nodes"
    finally:
        cluster.stop()


def test_candidates_the_api_cannot_return_are_unknown(apiserver: FakeApiServer, caplog: pytest.LogCaptureFixture) -> None:
    client, cluster = app_with_lookup(apiserver, preempt_unknown_nodes="keep")
    apiserver.fail_next("GET", "/api/v1/nodes/", 403, times=8)
    try:
        with caplog.at_level(logging.INFO):
            assert len(preempt(client)) == 8, "unknown, and kept as configured"
        (record,) = decision_records((r.getMessage() for r in caplog.records), "preempt")
        assert (record["unknown"], record["unknownKept"], record["fetched"]) == (8, True, 0)
        assert "the API lookup could not fetch them" in caplog.text
    finally:
        cluster.stop()


def test_names_mode_looks_up_what_the_node_cache_misses(apiserver: FakeApiServer) -> None:
    client, cluster = app_with_lookup(apiserver, node_cache=True)
    try:
        assert cluster.wait_synced(5)
        apiserver.requests.clear()
        pod = json.loads(fixture(VERSION, "node-cache", "00001-filter-gpu-1"))["Pod"]
        pod["metadata"]["labels"] = {"app": "urgent"}
        meta = {n: {"Pods": [{"UID": f"v-{n}"}], "NumPDBViolations": 0} for n in ["node-00001", "node-00003", "node-00099"]}
        body = json.dumps({"Pod": pod, "NodeNameToMetaVictims": meta}).encode()
        assert preempt(client, body) == ["node-00001"]
        assert node_gets(apiserver) == ["node-00099"], "the cached nodes are not fetched; the missing one is (404)"
    finally:
        cluster.stop()


def test_settings_for_the_lookup() -> None:
    settings = Settings.from_env({"EXTENDER_PREEMPT_NODE_LOOKUP": "true", "EXTENDER_PREEMPT_LOOKUP_TIMEOUT": "0.5"})
    assert (settings.preempt_node_lookup, settings.preempt_lookup_timeout) == (True, 0.5)
    assert settings.needs_api(False) and not Settings().needs_api(False)
    assert Settings(preempt_lookup_timeout=5).validate() == [
        "preempt lookup timeout 5: must be in (0, 4] seconds (kube-scheduler's httpTimeout is 5 s by default)"
    ]


def test_serve_with_the_lookup_refuses_to_start_without_api_access(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_", "KUBECONFIG"))}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "extender", "serve", "--preempt-node-lookup"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.startswith("extender: refusing to start: Kubernetes API access is needed (--preempt-node-lookup) but ")
