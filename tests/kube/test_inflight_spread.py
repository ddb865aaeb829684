"""A burst of identical pods spreads over the nodes through in-flight data from the pod watch.

The "scheduler" here asks prioritize for a pod, takes the best node and creates the pod
bound there in the fake API server (as another replica's bind would look: only the watch
tells this extender). The policy is the ``least-loaded`` rule with crane's defaults, and
every node measures the same 40 % on every window, sampled before the burst: only the
in-flight data from the watch can tell the nodes apart. With it, the next identical pod
goes elsewhere; with ``inflight.factor: 0`` every pod piles onto the same node.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import time

import pytest

from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.policy import load_policy_text
from extender.load.view import ClusterLoad
from extender.measured import MetricRef, Sample
from extender.service import ExtenderService
from tests.conftest import eventually
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.fake_store import recorded_pods


class EveryNodeAt40Percent:
    """Samples as a metric source would hold them: 40 % on every window of every node,
    measured a few seconds before the burst (bind times from the watch have 1 s resolution)."""

    def __init__(self) -> None:
        self.measured = Sample(40.0, time.time() - 5)

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        return self.measured

    def max_age(self, ref: MetricRef) -> float:
        return 120.0


def policy(factor: float) -> str:
    return f"""
sources: {{prometheus: {{type: prometheus, url: "http://prometheus.invalid:9090"}}}}
priorities: [{{type: least-loaded, params: {{inflight: {{factor: {factor}}}}}}}]
"""


@pytest.fixture
def cluster(apiserver: FakeApiServer) -> Iterator[ClusterState]:
    config = ClusterConfig(server=apiserver.url, token_source=StaticToken("test-token"), source="fake")
    state = ClusterState(config, ClusterOptions(nodes=True, pods=True))
    state.start()
    assert state.wait_synced(10)
    yield state
    state.stop()


def _pod(index: int, prefix: str = "burst") -> dict[str, Any]:
    pod: dict[str, Any] = copy.deepcopy(recorded_pods()[2])
    pod["metadata"].update(name=f"{prefix}-{index}", uid=f"{prefix}-uid-{index}", resourceVersion="")
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


def burst(apiserver: FakeApiServer, cluster: ClusterState, factor: float, prefix: str) -> list[str]:
    """Schedule one identical pod per node, one after the other; the node each one got."""
    assert cluster.nodes is not None and cluster.binds is not None
    names = sorted(cluster.nodes.names())
    samples = EveryNodeAt40Percent()
    load = ClusterLoad(samples=samples, placements=cluster.binds)
    service = ExtenderService(load_policy_text(policy(factor)), nodes=cluster.nodes, load=load)
    chosen: list[str] = []
    for index in range(len(names)):
        pod = _pod(index, prefix)
        body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
        scores = {entry["Host"]: entry["Score"] for entry in json.loads(service.prioritize(body))}
        best = max(names, key=lambda n: (scores[n], n))  # ties: the same node every time, unless in-flight data says
        chosen.append(best)
        apiserver.add_pod(_bound(pod, best))
        uid = pod["metadata"]["uid"]
        eventually(lambda: cluster.binds.get(uid) is not None, timeout=10)  # type: ignore[union-attr]
    return chosen


def test_a_burst_of_identical_pods_spreads_over_the_nodes(apiserver: FakeApiServer, cluster: ClusterState) -> None:
    chosen = burst(apiserver, cluster, 1.0, "burst")
    assert len(chosen) == 8 and len(set(chosen)) == 8, chosen  # every node got one pod: none was chosen twice
    assert cluster.binds is not None
    inflight = cluster.binds.placed_since(chosen[0], 0)
    assert inflight.count == 1 and inflight.request("cpu") == 0.5


def test_without_in_flight_accounting_the_burst_piles_onto_one_node(
    apiserver: FakeApiServer, cluster: ClusterState
) -> None:
    chosen = burst(apiserver, cluster, 0.0, "pile")
    assert len(chosen) == 8 and len(set(chosen)) == 1, chosen
