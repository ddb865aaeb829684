"""PrometheusSource against the real Prometheus: node mapping, sample times, partial failures, a hang."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extender.load.prometheus import PrometheusSource, address_index, host_of
from extender.load.source import SourceError
from extender.measured import fresh
from extender.policy.sources import load_sources
from extender.view import NodeAddress, NodeView
from tests.conftest import eventually
from tests.load.prometheus_server import Prometheus, Target, prometheus


def _text(body: str) -> Callable[[], str]:
    return lambda: body


#: an exporter that stamps its sample a minute back (as a federated or pushed series can be):
#: Prometheus keeps answering it for 5 minutes (its lookback), with no staleness marker
STALE_SINCE = int(time.time()) - 60


TARGETS = (
    Target("stale-a", {"node": "node-a"}, _text(f"test_stale 5 {STALE_SINCE * 1000}\n")),
    Target("name-a", {"node": "node-a"}, _text('test_load 12.5\ntest_nan NaN\ntest_dup{slot="1"} 1\ntest_dup{slot="2"} 2\n')),
    Target("name-b", {"node": "node-b"}, _text('test_load 80\ntest_dup{slot="1"} 3\ntest_inf +Inf\n')),
    Target("addr-a", {"instance": "10.0.0.5:9100"}, _text("test_addr_load 1\n")),
    Target("addr-b", {"instance": "[fd00::1]:9100"}, _text("test_addr_load 2\n")),
    Target("addr-c", {"instance": "Node-C.example:9100"}, _text("test_addr_load 3\n")),
    Target("addr-nobody", {"instance": "10.9.9.9:9100"}, _text("test_addr_load 4\n")),
)

NODES = (
    NodeView("node-a", addresses=(NodeAddress("InternalIP", "10.0.0.5"), NodeAddress("Hostname", "node-a"))),
    NodeView("node-b", addresses=(NodeAddress("InternalIP", "fd00:0:0::1"),)),
    NodeView("node-c", addresses=(NodeAddress("Hostname", "node-c.example"),)),
)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with prometheus(tmp_path_factory.mktemp("prometheus"), TARGETS) as server:
        yield server


def source(url: str, timeout: str = "2s", **options: Any) -> PrometheusSource:
    spec = load_sources({"prom": {"type": "prometheus", "url": url, "timeout": timeout, **options}})["prom"]
    return PrometheusSource(spec, lambda: NODES)


def test_values_are_mapped_by_the_node_label_with_one_query_per_key(prom: Prometheus) -> None:
    prom_source = source(prom.url)
    before = time.time()
    samples = prom_source.fetch(["test_load", "test_inf"])
    assert {node: s.value for node, s in samples["test_load"].items()} == {"node-a": 12.5, "node-b": 80.0}
    assert samples["test_inf"]["node-b"].value == math.inf
    # sampleTime: sample -- the scrape's own time, up to a scrape interval (1s) before the query
    for sample in samples["test_load"].values():
        assert before - 3 < sample.timestamp <= time.time()
    assert prom_source.partial_errors == {} and prom_source.warnings == {}


def test_sample_time_is_the_samples_own_and_evaluation_time_is_the_querys(prom: Prometheus) -> None:
    # `timestamp()` sees the sample's time, which an instant query's answer hides: with the
    # source's query and Prometheus' own timestamp() answer taken in one go they agree
    by_sample = source(prom.url).fetch(["test_load"])["test_load"]["node-a"]
    (own,) = [s for s in prom.query("timestamp(test_load)") if s["metric"]["node"] == "node-a"]
    assert by_sample.timestamp <= float(own["value"][1]) and float(own["value"][1]) - by_sample.timestamp <= 1.5
    before = time.time()
    by_evaluation = source(prom.url, sampleTime="evaluation").fetch(["test_load"])["test_load"]["node-a"]
    assert by_evaluation.timestamp >= before - 0.5  # the query's time, however old the scrape
    assert by_evaluation.value == by_sample.value == 12.5


def test_only_the_sample_time_shows_that_a_series_stopped_coming(prom: Prometheus) -> None:
    now = time.time()
    by_sample = source(prom.url).fetch(["test_stale"])["test_stale"]["node-a"]
    by_evaluation = source(prom.url, sampleTime="evaluation").fetch(["test_stale"])["test_stale"]["node-a"]
    assert by_sample.value == by_evaluation.value == 5
    assert by_sample.timestamp == STALE_SINCE
    assert not fresh(by_sample, now, max_age=30)
    assert fresh(by_evaluation, now, max_age=30)  # what an instant query alone would make of it


def test_instance_addresses_map_to_nodes_through_their_addresses(prom: Prometheus) -> None:
    by_address = source(prom.url, nodeLabel="instance", nodeLabelValue="address")
    samples = by_address.fetch(["test_addr_load"])
    assert {node: s.value for node, s in samples["test_addr_load"].items()} == {"node-a": 1, "node-b": 2, "node-c": 3}
    (note,) = by_address.warnings["test_addr_load"]
    assert note.startswith("1 series map to no node") and "10.9.9.9:9100" in note


def test_a_node_with_several_series_is_left_out_and_the_fix_named(prom: Prometheus) -> None:
    prom_source = source(prom.url)
    samples = prom_source.fetch(["test_dup", "max by (node) (test_dup)"])
    assert {node: s.value for node, s in samples["test_dup"].items()} == {"node-b": 3.0}
    (note,) = prom_source.warnings["test_dup"]
    assert "node-a" in note and "max by (node) (...)" in note
    assert {n: s.value for n, s in samples["max by (node) (test_dup)"].items()} == {"node-a": 2.0, "node-b": 3.0}


def test_a_query_without_series_is_returned_empty_and_noted(prom: Prometheus) -> None:
    prom_source = source(prom.url)
    assert prom_source.fetch(["test_misspelt"]) == {"test_misspelt": {}}
    assert prom_source.warnings["test_misspelt"][0].startswith("the query gives no series")


def test_nan_is_kept_as_a_sample_that_is_never_fresh(prom: Prometheus) -> None:
    sample = source(prom.url).fetch(["test_nan"])["test_nan"]["node-a"]
    assert math.isnan(sample.value)
    assert not fresh(sample, time.time(), 120)


@pytest.mark.parametrize("sample_time", ["sample", "evaluation"])
def test_a_bad_expression_fails_alone(prom: Prometheus, sample_time: str) -> None:
    prom_source = source(prom.url, sampleTime=sample_time, queries={"cpu": "test_load", "broken": "sum(test_load"})
    samples = prom_source.fetch(["cpu", "broken", "test_load[1m]", "scalar(test_load)"])
    assert set(samples) == {"cpu"} and samples["cpu"]["node-b"].value == 80.0
    assert set(prom_source.partial_errors) == {"broken", "test_load[1m]", "scalar(test_load)"}
    assert prom_source.partial_errors["broken"].startswith("HTTP 400 bad_data: invalid parameter")
    if sample_time == "evaluation":
        assert "gives a matrix, not an instant vector" in prom_source.partial_errors["test_load[1m]"]
        assert "gives a scalar" in prom_source.partial_errors["scalar(test_load)"]
    else:
        assert "wrapped in timestamp()" in prom_source.partial_errors["scalar(test_load)"]
    prom_source.fetch(["cpu"])
    assert prom_source.partial_errors == {}  # cleared on each fetch


def test_a_hanging_prometheus_fails_the_fetch_within_its_timeout_and_recovers(prom: Prometheus) -> None:
    prom_source = source(prom.url, timeout="1s")
    assert prom_source.fetch(["test_load"])  # a kept-alive connection to hang on
    prom.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"^prometheus http://127\.0\.0\.1:\d+: timed out after 1s$"):
            prom_source.fetch(["test_load", "test_dup", "test_nan"])
        assert time.monotonic() - started < 1 + 1.0  # the whole fetch, not per key or per read
    finally:
        prom.resume()
    eventually(lambda: "node-a" in prom_source.fetch(["test_load"]).get("test_load", {}), timeout=20)


def test_host_of_reads_instance_addresses() -> None:
    assert host_of("10.0.0.5:9100") == "10.0.0.5"
    assert host_of("[fd00:0::1]:9100") == "fd00::1"
    assert host_of("fd00::1") == "fd00::1"
    assert host_of("Node-A.example.:9100") == "node-a.example"
    assert host_of("10.0.0.5") == "10.0.0.5"


def test_an_address_two_nodes_share_maps_to_neither() -> None:
    shared = NodeAddress("ExternalIP", "203.0.113.7")
    index = address_index([NodeView("a", addresses=(shared,)), NodeView("b", addresses=(shared,))])
    assert index["203.0.113.7"] is None and index["a"] == "a" and index["b"] == "b"


def test_no_keys_asks_nothing() -> None:
    assert source("http://127.0.0.1:9").fetch([]) == {}


def test_the_url_in_errors_has_no_credentials(tmp_path: Path) -> None:
    prom_source = source("http://user:pw@127.0.0.1:9/prom/")
    assert prom_source.where == "http://127.0.0.1:9/prom"
