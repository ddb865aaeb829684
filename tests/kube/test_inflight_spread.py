"""A burst of identical pods spreads over the nodes through in-flight data from the pod watch.

The "scheduler" here asks prioritize for a pod, takes the best node and creates the pod
bound there in the fake API server (as another replica's bind would look: only the watch
tells this extender). The next identical pod must see the first in flight and go elsewhere.
The priority is test-local (scores the node's in-flight cpu, lowest best); the lead will
switch this test to the least-loaded rule once it lands.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.policy import load_policy_text
from extender.sdk import Priority
from extender.sdk.rules import Context
from extender.service import ExtenderService
from extender.load.view import ClusterLoad
from extender.view import NodeView, PodView
from tests.conftest import eventually
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.fake_store import recorded_pods


class FewestInFlight(Priority):
    """Test-local: the fewer cores bound to a node recently (per the bind history), the better."""

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float:
        return -ctx.load.placed_since(node.name, 0).request("cpu")


POLICY = "priorities: [{type: 'tests.kube.test_inflight_spread:FewestInFlight'}]"


@pytest.fixture
def cluster(apiserver: FakeApiServer) -> Iterator[ClusterState]:
    config = ClusterConfig(server=apiserver.url, token_source=StaticToken("test-token"), source="fake")
    state = ClusterState(config, ClusterOptions(nodes=True, pods=True))
    state.start()
    assert state.wait_synced(10)
    yield state
    state.stop()


def _pod(index: int) -> dict[str, Any]:
    pod: dict[str, Any] = copy.deepcopy(recorded_pods()[2])
    pod["metadata"].update(name=f"burst-{index}", uid=f"burst-uid-{index}", resourceVersion="")
    pod["spec"].pop("nodeName", None)
    pod["spec"]["containers"] = [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "500m"}}}]
    pod["status"] = {"phase": "Pending"}
    return pod


def _bound(pod: dict[str, Any], node: str) -> dict[str, Any]:
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = node
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    bound["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}
    return bound


def test_a_burst_of_identical_pods_spreads_over_the_nodes(apiserver: FakeApiServer, cluster: ClusterState) -> None:
    assert cluster.nodes is not None and cluster.binds is not None
    names = sorted(cluster.nodes.names())
    service = ExtenderService(load_policy_text(POLICY), nodes=cluster.nodes, load=ClusterLoad(placements=cluster.binds))
    chosen: list[str] = []
    for index in range(len(names)):
        pod = _pod(index)
        body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
        scores = {entry["Host"]: entry["Score"] for entry in json.loads(service.prioritize(body))}
        best = max(names, key=lambda n: (scores[n], n))  # ties: the same node every time, unless in-flight data says
        chosen.append(best)
        apiserver.add_pod(_bound(pod, best))
        eventually(lambda: cluster.binds.get(f"burst-uid-{index}") is not None, timeout=10)  # type: ignore[union-attr]
    assert len(set(chosen)) == len(names), chosen  # every node got one pod: none was chosen twice
    inflight = cluster.binds.placed_since(chosen[0], 0)
    assert inflight.count == 1 and inflight.request("cpu") == 0.5
