"""/metrics of a real ``extender serve`` with a node cache, a metrics-server source and bind,
against the fake API server: cache size and freshness, relists, watch errors, the source's
fetches and newest sample, and bind outcomes follow what the API server does."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from extender.kube.client import Backoff, KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.reflector import Reflector
from extender.kube.stores import NodeStore
from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import live_extender, write_kubeconfig
from tests.kube.test_names_mode import POLICY
from tests.test_metrics import scrape, value
from tests.test_server import free_port

#: POLICY plus a metrics-server source (refreshed every second) a rule reads
SOURCES = """
sources:
  usage: {type: metrics-server, refreshInterval: 1s, maxAge: 1m, timeout: 1s}
"""
LOAD_RULE = """- type: load-threshold
  params: {source: usage, thresholds: [{metric: cpu, max: 99}]}
"""
BIND = fixture("kube-scheduler-v1.30", "node-cache", "00003-bind-gpu-1")


def test_cache_source_and_bind_metrics_follow_the_api_server(tmp_path: Path) -> None:
    apiserver = FakeApiServer(metrics_server=True).start()
    try:
        measured = time.time() - 5
        apiserver.set_node_metrics("node-00001", "500m", "1Gi", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(measured)))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
        with live_extender(tmp_path, kubeconfig, POLICY.replace("priorities:\n", LOAD_RULE + "priorities:\n") + SOURCES) as live:
            eventually(live.ready)
            nodes = len(apiserver.nodes)
            eventually(lambda: value(scrape(live.url), "extender_cache_connected", cache="nodes") == 1)
            samples = scrape(live.url)
            assert value(samples, "extender_cache_objects", cache="nodes") == nodes
            assert time.time() - 60 < value(samples, "extender_cache_last_update_timestamp_seconds", cache="nodes") <= time.time()
            # counters start at 0 (exposed), so rate() sees their first increase
            assert samples["extender_cache_relists_total", frozenset({("cache", "nodes")})] == 0
            assert samples["extender_cache_watch_errors_total", frozenset({("cache", "nodes")})] == 0

            # a watch event: one more node, a newer update
            before = value(samples, "extender_cache_last_update_timestamp_seconds", cache="nodes")
            apiserver.add_synthetic_nodes(1)
            eventually(lambda: value(scrape(live.url), "extender_cache_objects", cache="nodes") == nodes + 1)
            assert value(scrape(live.url), "extender_cache_last_update_timestamp_seconds", cache="nodes") >= before

            # the source: fetched every second, its newest sample is the one set above
            eventually(lambda: value(scrape(live.url), "extender_source_fetches_total", source="usage") >= 2)
            samples = scrape(live.url)
            assert value(samples, "extender_source_fetch_errors_total", source="usage") == 0
            assert abs(value(samples, "extender_source_newest_sample_timestamp_seconds", source="usage") - int(measured)) < 1
            assert value(samples, "extender_source_max_age_seconds", source="usage") == 60
            assert value(samples, "extender_source_last_success_timestamp_seconds", source="usage") > measured

            # a watch connection reset mid-stream: a watch error, then a relist (an event may be lost)
            apiserver.drop_connections()
            apiserver.delete_node("node-00007")
            apiserver.compact()
            eventually(lambda: value(scrape(live.url), "extender_cache_relists_total", cache="nodes") >= 1)
            eventually(lambda: value(scrape(live.url), "extender_cache_objects", cache="nodes") == nodes)
            assert value(scrape(live.url), "extender_cache_watch_errors_total", cache="nodes") >= 1

            # bind: the fake API server binds the recorded pod
            assert live.post("bind", BIND).json() == {"Error": ""}
            assert value(scrape(live.url), "extender_binds_total", outcome="bound") == 1

            # the API server goes away: the cache is disconnected, its watch errors counted;
            # the source's fetches fail
            errors = value(scrape(live.url), "extender_cache_watch_errors_total", cache="nodes")
            apiserver.stop()
            eventually(lambda: value(scrape(live.url), "extender_cache_connected", cache="nodes") == 0)
            eventually(lambda: value(scrape(live.url), "extender_cache_watch_errors_total", cache="nodes") > errors)
            eventually(lambda: value(scrape(live.url), "extender_source_fetch_errors_total", source="usage") >= 1)
            assert live.post("bind", BIND).json()["Error"] != ""
            samples = scrape(live.url)
            assert value(samples, "extender_binds_total", outcome="failed") == 1
            assert value(samples, "extender_request_duration_seconds_count", verb="bind", outcome="error-answer") == 1
            assert value(samples, "extender_request_duration_seconds_count", verb="bind", outcome="ok") == 1
    finally:
        apiserver.stop()


def test_a_cache_that_never_reached_the_api_server_reports_disconnected() -> None:
    # in process (one registry): a reflector named apart from the live tests' "nodes"
    client = KubeClient(ClusterConfig(server=f"http://127.0.0.1:{free_port()}", token_source=StaticToken("t")), timeout=1, retries=0)
    reflector = Reflector("unreachable", client, "/api/v1/nodes", store=NodeStore(), decode=NodeStore.decode,
                          backoff=Backoff(base=0.01, cap=0.05))  # fmt: skip
    reflector.start()
    try:
        assert REGISTRY.get_sample_value("extender_cache_connected", {"cache": "unreachable"}) == 0
        eventually(lambda: (REGISTRY.get_sample_value("extender_cache_watch_errors_total", {"cache": "unreachable"}) or 0) >= 2)
        assert REGISTRY.get_sample_value("extender_cache_objects", {"cache": "unreachable"}) is None  # never listed
    finally:
        reflector.stop()
