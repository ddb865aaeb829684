"""The metrics-server source against the fake API server (metrics.k8s.io NodeMetrics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from extender.engine.model import SourceSpec
from extender.k8s.timefmt import parse_timestamp
from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.load.metrics_server import KEYS, MetricsServerSource
from extender.load.source import SourceError
from extender.view import NodeView
from tests.conftest import FIXTURES
from tests.kube.fake_apiserver import FakeApiServer

# allocatable of the recorded node-00001: 3920m cpu, 16277216Ki memory
N1 = NodeView("node-00001", allocatable={"cpu": "3920m", "memory": "16277216Ki"})


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def make(
    server: FakeApiServer, nodes: list[NodeView] | None = None, keys: tuple[str, ...] = KEYS
) -> MetricsServerSource:
    spec = SourceSpec("metrics", "metrics-server", timeout=2.0, keys=frozenset(keys))
    client = KubeClient(ClusterConfig(server=server.url, token_source=StaticToken("test-token")))
    return MetricsServerSource(spec, lambda: nodes if nodes is not None else [N1], client)


def test_usage_as_percent_of_allocatable_and_raw(apiserver: FakeApiServer) -> None:
    apiserver.set_node_metrics("node-00001", "1960m", "8138608Ki", "2026-12-02T14:00:00Z")
    apiserver.set_node_metrics("node-00002", "123456789n", "1234Ki", "2026-12-02T14:00:05Z")
    fetched = make(apiserver).fetch(KEYS)
    assert fetched["cpu"]["node-00001"].value == pytest.approx(50.0)
    assert fetched["memory"]["node-00001"].value == pytest.approx(50.0)
    assert fetched["cpu"]["node-00001"].timestamp == parse_timestamp("2026-12-02T14:00:00Z").timestamp()
    # node-00002 is not in the lister: no percent, but its raw usage is reported
    assert "node-00002" not in fetched["cpu"]
    assert fetched["cpu_cores"]["node-00002"].value == pytest.approx(0.123456789)
    assert fetched["memory_bytes"]["node-00002"].value == 1234 * 1024


def test_only_the_requested_keys_and_unknown_keys_are_partial_errors(apiserver: FakeApiServer) -> None:
    apiserver.set_node_metrics("node-00001", "250m", "1Mi")
    source = make(apiserver, keys=("cpu", "load1"))
    assert set(source.fetch(["cpu", "load1"])) == {"cpu"}
    assert "load1" in source.partial_errors


def test_the_fake_answers_like_the_recorded_cluster_without_metrics_server(apiserver: FakeApiServer) -> None:
    recorded = (FIXTURES / "kube-apiserver-v1.24" / "metrics-api-absent.json").read_text()
    assert "404 page not found" in recorded
    absent = "metrics.k8s.io is not served.*install metrics-server, or use a prometheus source"
    with pytest.raises(SourceError, match=absent):
        make(apiserver).fetch(KEYS)


def test_forbidden_names_the_rbac_rule(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("GET", "/apis/metrics.k8s.io", 403)
    with pytest.raises(SourceError, match=r"403.*apiGroups: \[metrics.k8s.io\], resources: \[nodes\], verbs: \[list\]"):
        make(apiserver).fetch(KEYS)


def test_garbage_is_a_source_error(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("GET", "/apis/metrics.k8s.io", 200, body="not json")
    with pytest.raises(SourceError, match="not a NodeMetricsList"):
        make(apiserver).fetch(KEYS)


def test_a_node_without_a_timestamp_or_usage_is_left_out(apiserver: FakeApiServer) -> None:
    apiserver.set_node_metrics("node-00001", "250m", "1Mi", "garbage")
    assert make(apiserver).fetch(KEYS)["cpu"] == {}
