"""A policy reload in names mode keeps the running node cache (no relist, no new watch) and
follows its changes with the new engine only; a policy enabling bind in a process started
without a binder is refused (that takes a restart)."""

from __future__ import annotations

import json
from pathlib import Path

from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web import create_app
from extender.web.reloading import PolicyReloader
from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.test_names_mode import GPU_POOL

CONDITIONS = """predicates:
- type: node-condition
  params: {conditions: [{type: Ready, status: "True", match: NotEqual}, {type: KernelDeadlock, status: "True"}]}
"""
POOLS = CONDITIONS + """- type: node-selector-policy
  params:
    mappings:
    - name: inference
      podSelector: {matchLabels: {app: infer}}
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [gpu]}]}]
"""
BODY = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
SENT = json.loads(BODY)["NodeNames"]


def node_lists(apiserver: FakeApiServer) -> int:
    return sum(1 for r in list(apiserver.requests) if r.path == "/api/v1/nodes" and not r.is_watch)


def test_a_reload_keeps_the_node_cache_and_only_the_new_engine_follows_it(tmp_path: Path, apiserver: FakeApiServer) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POOLS)
    config = ClusterConfig(server=apiserver.url, token_source=StaticToken("test-token"), source="fake")
    cluster = ClusterState(config, ClusterOptions(nodes=True))
    app = create_app(Settings(node_cache=True, policy=str(policy)), cluster=cluster)
    try:
        assert cluster.wait_synced(5)
        client = app.test_client()
        reloader: PolicyReloader = app.extensions["extender.reloader"]
        assert json.loads(client.post("/scheduler/filter", data=BODY).data)["NodeNames"] == [n for n in SENT if n in GPU_POOL]
        lists = node_lists(apiserver)

        old: ExtenderService = app.extensions["extender.service"]
        policy.write_text(CONDITIONS)
        attempt = reloader.check("file")
        assert attempt is not None and attempt.ok
        new: ExtenderService = app.extensions["extender.service"]
        assert new.nodes is cluster.nodes and new is not old
        assert cluster.nodes._listeners == [new.engine.forget_node]  # type: ignore[union-attr]
        assert json.loads(client.post("/scheduler/filter", data=BODY).data)["NodeNames"] == SENT

        apiserver.modify_node(
            "node-00005", lambda n: n["status"]["conditions"].append({"type": "KernelDeadlock", "status": "True"})
        )
        eventually(lambda: cluster.nodes.get("node-00005").condition("KernelDeadlock") is not None)  # type: ignore[union-attr]
        reply = json.loads(client.post("/scheduler/filter", data=BODY).data)
        assert reply["FailedAndUnresolvableNodes"] == {"node-00005": "node(s) had condition KernelDeadlock=True"}
        assert node_lists(apiserver) == lists  # the cache was kept: no relist

        policy.write_text(CONDITIONS + "bind: {enabled: true}\n")
        refused = reloader.check("file")
        assert refused is not None and not refused.ok
        assert "enables bind" in refused.error and "restart" in refused.error
        assert app.extensions["extender.service"] is new
    finally:
        cluster.stop()
