"""Names mode end to end: the recorded nodeCacheCapable requests answered from a node cache fed
by the fake API server, bind through it, and the same through the real server and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.web import create_app
from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.records import decision_records, rejected_count
from tests.test_server import free_port, wait_ready

# The recorded cluster's gpu pool: node-00003, -00005, -00006, -00007.
POLICY = """
predicates:
- type: node-condition
  params: {conditions: [{type: Ready, status: "True", match: NotEqual}, {type: KernelDeadlock, status: "True"}]}
- type: node-selector-policy
  params:
    mappings:
    - name: inference
      podSelector: {matchLabels: {app: infer}}
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [gpu]}]}]
priorities:
- type: node-cost
  params:
    prices: {m5.xlarge: {on-demand: 0.192}, r5.2xlarge: {on-demand: 0.504}, c5.4xlarge: {on-demand: 0.680}}
bind: {enabled: true}
"""
GPU_POOL = ["node-00003", "node-00005", "node-00006", "node-00007"]
VERSIONS = ["kube-scheduler-v1.24", "kube-scheduler-v1.30"]


def cluster_for(server: FakeApiServer, **options: Any) -> ClusterState:
    config = ClusterConfig(server=server.url, token_source=StaticToken("test-token"), source="fake")
    return ClusterState(config, ClusterOptions(**{"nodes": True, "bind": True, **options}))


@pytest.fixture
def app(apiserver: FakeApiServer) -> Iterator[tuple[FlaskClient, ClusterState]]:
    cluster = cluster_for(apiserver)
    flask_app = create_app(Settings(node_cache=True), policy=load_policy_text(POLICY), cluster=cluster)
    assert cluster.wait_synced(5)
    yield flask_app.test_client(), cluster
    cluster.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_names_mode_filter_is_decided_from_the_cache(app: tuple[FlaskClient, ClusterState], version: str) -> None:
    client, _ = app
    body = fixture(version, "node-cache", "00001-filter-gpu-1")
    sent = json.loads(body)["NodeNames"]
    reply = json.loads(client.post("/scheduler/filter", data=body).data)
    assert reply["Nodes"] is None
    assert reply["NodeNames"] == [n for n in sent if n in GPU_POOL], "only names that were sent, in their order"
    assert reply["FailedAndUnresolvableNodes"] == {n: "node(s) not in node pool 'inference'" for n in sent if n not in GPU_POOL}
    assert reply["FailedNodes"] == {} and reply["Error"] == ""


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_names_mode_prioritize_scores_from_the_cache(app: tuple[FlaskClient, ClusterState], version: str) -> None:
    client, _ = app
    body = fixture(version, "node-cache", "00002-prioritize-gpu-1")
    reply = json.loads(client.post("/scheduler/prioritize", data=body).data)
    assert [h["Host"] for h in reply] == json.loads(body)["NodeNames"]
    scores = {h["Host"]: h["Score"] for h in reply}
    # m5.xlarge (node-00001, -00007) cheapest -> 10; r5.2xlarge -> 4; c5.4xlarge (-00005, -00006) -> 0
    assert scores == {"node-00000": 4, "node-00001": 10, "node-00002": 4, "node-00003": 4, "node-00004": 4,
                      "node-00005": 0, "node-00006": 0, "node-00007": 10}


def test_cache_changes_reach_decisions(app: tuple[FlaskClient, ClusterState], apiserver: FakeApiServer) -> None:
    client, cluster = app
    body = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
    apiserver.modify_node(
        "node-00005", lambda n: n["status"]["conditions"].append({"type": "KernelDeadlock", "status": "True"})
    )
    apiserver.delete_node("node-00006")
    eventually(lambda: cluster.nodes.get("node-00006") is None)  # type: ignore[union-attr]
    eventually(lambda: cluster.nodes.get("node-00005").condition("KernelDeadlock") is not None)  # type: ignore[union-attr]
    reply = json.loads(client.post("/scheduler/filter", data=body).data)
    assert reply["NodeNames"] == ["node-00007", "node-00003"]
    assert reply["FailedAndUnresolvableNodes"]["node-00005"] == "node(s) had condition KernelDeadlock=True"
    assert reply["FailedAndUnresolvableNodes"]["node-00006"] == "node(s) unknown to the extender (not in its node cache)"


def test_recorded_bind_goes_through_the_api_server_and_a_retry_succeeds(
    app: tuple[FlaskClient, ClusterState], apiserver: FakeApiServer
) -> None:
    client, _ = app
    body = fixture("kube-scheduler-v1.30", "node-cache", "00003-bind-gpu-1")
    assert json.loads(client.post("/scheduler/bind", data=body).data) == {"Error": ""}
    assert apiserver.pods[("default", "gpu-1")]["spec"]["nodeName"] == "node-00002"
    assert json.loads(client.post("/scheduler/bind", data=body).data) == {"Error": ""}, "a retried bind is a success"
    other = json.dumps({**json.loads(body), "Node": "node-00004"}).encode()
    assert json.loads(client.post("/scheduler/bind", data=other).data) == {
        "Error": "pod default/gpu-1 is already bound to node node-00002, not node-00004"
    }


def test_v124_bind_of_a_pod_the_server_does_not_have_reports_it(app: tuple[FlaskClient, ClusterState]) -> None:
    client, _ = app  # the v1.24 recording's gpu-1 has another UID than the server's gpu-1
    reply = json.loads(client.post("/scheduler/bind", data=fixture("kube-scheduler-v1.24", "node-cache", "00003-bind-gpu-1")).data)
    assert "was replaced" in reply["Error"]


def names_mode_preempt(client: FlaskClient, candidates: list[str]) -> list[str]:
    pod = json.loads(fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1"))["Pod"]
    meta = {n: {"Pods": [{"UID": f"victim-{n}"}], "NumPDBViolations": 0} for n in candidates}
    reply = json.loads(client.post("/scheduler/preempt", data=json.dumps({"Pod": pod, "NodeNameToMetaVictims": meta})).data)
    return sorted(reply["NodeNameToMetaVictims"])


def test_preempt_drops_candidates_the_predicates_reject_and_those_the_cache_misses(
    app: tuple[FlaskClient, ClusterState], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = app
    # node-00001 is outside the gpu pool; node-00099 is not in the node cache, so it cannot
    # be checked and, by default (--preempt-unknown-nodes drop), is not offered for preemption
    with caplog.at_level("INFO", logger="extender.decisions"):
        assert names_mode_preempt(client, ["node-00001", "node-00003", "node-00099"]) == ["node-00003"]
    (record,) = decision_records((r.getMessage() for r in caplog.records), "preempt")
    assert (record["nodes"], record["kept"], record["droppedCount"], rejected_count(record)) == (3, 1, 2, 1)
    assert (record["mode"], record["unknown"], record["unknownKept"]) == ("names", 1, False)
    assert "node-00099; they are not in the node cache" in caplog.text


def test_preempt_can_keep_candidates_the_cache_misses(apiserver: FakeApiServer) -> None:
    cluster = cluster_for(apiserver)
    settings = Settings(node_cache=True, preempt_unknown_nodes="keep")
    client = create_app(settings, policy=load_policy_text(POLICY), cluster=cluster).test_client()
    try:
        assert cluster.wait_synced(5)
        assert names_mode_preempt(client, ["node-00001", "node-00003", "node-00099"]) == ["node-00003", "node-00099"]
    finally:
        cluster.stop()


def test_not_ready_until_the_first_list(apiserver: FakeApiServer) -> None:
    apiserver.delay_next("/api/v1/nodes", 1.0)
    cluster = cluster_for(apiserver)
    client = create_app(Settings(node_cache=True), policy=load_policy_text(POLICY), cluster=cluster).test_client()
    try:
        assert client.get("/readyz").status_code == 503
        body = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
        reply = json.loads(client.post("/scheduler/filter", data=body).data)
        assert reply["Error"].startswith("the extender's node cache has not completed its first list")
        assert cluster.wait_synced(5)
        assert client.get("/readyz").status_code == 200
        health = json.loads(client.get("/healthz").data)
        assert health["caches"]["nodes"]["synced"] is True and health["caches"]["nodes"]["items"] == 8
        assert 0 <= health["caches"]["nodes"]["ageSeconds"] < 600  # seconds since the last event, not a speed
    finally:
        cluster.stop()


def write_kubeconfig(path: Path, server: str) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "extender", "user": {"token": "test-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "extender"}}],
                "current-context": "fake",
            }
        )
    )


def test_the_real_server_runs_names_mode_from_a_kubeconfig(apiserver: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, apiserver.url)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "extender", "serve", "--port", str(port), "--policy", str(policy),
         "--node-cache", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        session = requests.Session()
        for stem in ("00001-filter-gpu-1", "00002-prioritize-gpu-1", "00003-bind-gpu-1"):
            body = fixture("kube-scheduler-v1.30", "node-cache", stem)
            response = session.post(f"{url}/scheduler/{stem.split('-')[1]}", data=body, timeout=5)
            assert response.status_code == 200
            if stem.endswith("filter-gpu-1"):
                assert sorted(response.json()["NodeNames"]) == GPU_POOL
            if stem.endswith("bind-gpu-1"):
                assert response.json() == {"Error": ""}
        watchers = {r.headers.get("User-Agent") for r in apiserver.requests if r.query.get("watch") == "1"}
        assert watchers, "each worker watches nodes"
    finally:
        process.terminate()
        assert process.wait(timeout=25) == 0


def test_serve_refuses_to_start_without_api_access(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_"))}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "extender", "serve", "--node-cache"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.startswith("extender: refusing to start: Kubernetes API access is needed (--node-cache) but ")
