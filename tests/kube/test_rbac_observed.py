"""The RBAC deploy/ grants is exactly what the code calls: each feature runs against the fake
API server through everything it does (sync, watch renewals, relists, binds, conflicts), and
the requests it made, read as RBAC verbs, must equal tests/test_deploy.py's FEATURE_RBAC,
which the manifests are checked against. A verb granted but never used fails here."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from extender.engine.model import SourceSpec
from extender.kube.binder import BindError
from extender.kube.client import KubeClient
from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.events import EventRecorder
from extender.load.metrics_server import KEYS, MetricsServerSource
from tests.conftest import eventually
from tests.kube.fake_apiserver import FakeApiServer, RecordedRequest
from tests.kube.test_binder import GPU_UID
from tests.kube.test_events import record as event_record
from tests.test_deploy import FEATURE_RBAC

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.-]+)/[a-z0-9]+)/(?:namespaces/[^/]+/)?(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def as_rbac(request: RecordedRequest) -> tuple[tuple[str, str], str]:
    """((apiGroup, resource[/subresource]), verb), as the API server's RequestInfo resolves it."""
    match = _PATH.match(request.path)
    assert match, f"the extender called a path that is not a resource: {request.path}"
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if request.method == "GET":
        verb = "get" if match["name"] else ("watch" if request.is_watch else "list")
    else:
        verb = _VERBS[request.method]
    return (match["group"] or "", resource), verb


def observed(server: FakeApiServer) -> dict[tuple[str, str], set[str]]:
    used: dict[tuple[str, str], set[str]] = {}
    for request in server.requests:
        key, verb = as_rbac(request)
        used.setdefault(key, set()).add(verb)
    return used


def exercise_caches(server: FakeApiServer, cluster: ClusterState) -> None:
    cluster.start()
    assert cluster.wait_synced(5)
    assert server.wait_for_watches(len(cluster.reflectors))
    server.modify_node("node-00001", lambda n: n["metadata"]["labels"].update(x="y"))
    server.end_watches()  # resume from a resourceVersion
    assert server.wait_for_watches(len(cluster.reflectors))
    server.drop_connections()  # reconnect; changes meanwhile, then compaction: a 410 and a relist
    server.modify_node("node-00002", lambda n: n["metadata"]["labels"].update(x="z"))
    server.compact()
    eventually(lambda: all(r.status.lists >= 2 for r in cluster.reflectors))


def exercise_bind(server: FakeApiServer, cluster: ClusterState) -> None:
    binder = cluster.binder
    assert binder is not None
    binder.bind("default", "gpu-1", GPU_UID, "node-00002")
    binder.bind("default", "gpu-1", GPU_UID, "node-00002")  # a retried bind: 409, read back
    with pytest.raises(BindError):
        binder.bind("default", "bindme", "dc57dcfe-4ca3-4f46-9569-11dd8334ccd7", "node-00001")


def exercise_node_lookup(server: FakeApiServer, cluster: ClusterState) -> None:
    lookup = cluster.node_lookup
    assert lookup is not None
    assert sorted(lookup.fetch(["node-00001", "node-00002", "no-such-node"])) == ["node-00001", "node-00002"]


def exercise_metrics_server(server: FakeApiServer, cluster: ClusterState) -> None:
    server.set_node_metrics("node-00001", "250m", "1234Ki")
    spec = SourceSpec("metrics", "metrics-server", keys=frozenset(KEYS))
    source = MetricsServerSource(spec, list, KubeClient(cluster.config))
    try:
        assert source.fetch(KEYS)["cpu_cores"]["node-00001"].value == 0.25
    finally:
        source.close()


def exercise_events(server: FakeApiServer, cluster: ClusterState) -> None:
    recorder = EventRecorder(KubeClient(cluster.config), instance="extender-0", expects_prioritize=True).start()
    recorder(event_record("filter"))
    recorder(event_record("prioritize"))  # combined with the filter: one Event
    recorder(event_record("filter", name="web-1", uid="b2"))  # posted alone when the recorder stops
    recorder.stop()
    assert recorder.posted == 2 and len(server.created_events) == 2


FEATURES: dict[str, tuple[ClusterOptions, Callable[[FakeApiServer, ClusterState], None]]] = {
    "node-cache": (ClusterOptions(nodes=True), exercise_caches),
    "pod-cache": (ClusterOptions(nodes=False, pods=True), exercise_caches),
    "bind": (ClusterOptions(nodes=False, bind=True), exercise_bind),
    "preempt-node-lookup": (ClusterOptions(nodes=False, node_lookup=True), exercise_node_lookup),
    "metrics-server-source": (ClusterOptions(nodes=False), exercise_metrics_server),
    "events": (ClusterOptions(nodes=False), exercise_events),
}


def test_every_feature_that_is_granted_rbac_is_exercised_here() -> None:
    assert sorted(FEATURES) == sorted(FEATURE_RBAC), "add an exercise of the new feature's API calls to FEATURES"


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_each_feature_uses_exactly_the_rbac_its_component_grants(apiserver: FakeApiServer, feature: str) -> None:
    options, exercise = FEATURES[feature]
    cluster = ClusterState(ClusterConfig(server=apiserver.url, token_source=StaticToken("test-token")), options)
    try:
        exercise(apiserver, cluster)
    finally:
        cluster.stop()
    assert observed(apiserver) == FEATURE_RBAC[feature]
