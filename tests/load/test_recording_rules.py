"""deploy/prometheus: the recording rules pass promtool, and on the real Prometheus turn
node-exporter-shaped series into the per-node percentages the load rules read."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from extender.load.prometheus import PrometheusSource
from extender.policy.sources import load_sources
from tests.conftest import eventually
from tests.load.prometheus_server import PROMTOOL, Prometheus, Target, prometheus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "recording-rules.yaml"
OPERATOR_RULES = DEPLOY / "prometheusrule.yaml"

#: the names the policy uses (crane's), as recording-rules.yaml's header maps them
QUERIES = {
    f"{resource}_usage_{window}": f"node:{metric}_usage_percent:{recorded}"
    for resource, metric in (("cpu", "cpu"), ("mem", "memory"))
    for window, recorded in (
        ("avg_5m", "avg5m"), ("max_avg_1h", "max_avg5m_1h"), ("max_avg_1d", "max_avg5m_1d"),
        ("avg_1h", "avg_1h"), ("avg_1d", "avg_1d"), ("stddev_1h", "stddev_avg5m_1h"), ("stddev_1d", "stddev_avg5m_1d"),
    )
}  # fmt: skip

GIB = 2**30
STARTED = time.time()


def node_exporter(cpus: dict[str, dict[str, float]], available: float, total: float) -> Callable[[], str]:
    """node-exporter's series for a node whose CPUs spend ``cpus[cpu][mode]`` seconds per second
    in each mode (counters that follow the clock), with constant memory."""

    def body() -> str:
        elapsed = time.time() - STARTED + 1000  # counters of a node up for a while
        lines = [
            f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {share * elapsed:.6f}'
            for cpu, modes in cpus.items()
            for mode, share in modes.items()
        ]
        lines += [f"node_memory_MemAvailable_bytes {available}", f"node_memory_MemTotal_bytes {total}"]
        return "\n".join(lines) + "\n"

    return body


#: node-a: CPU 0 busy 20% (idle 0.7 + iowait 0.1), CPU 1 busy 70% -> 45%; memory 6 of 8 GiB free -> 25%
#: node-b: one CPU busy 10% (steal counts as not ours); memory 1 of 4 GiB free -> 75%
TARGETS = (
    Target(
        "ne-a",
        {"instance": "node-a", "job": "node-exporter"},
        node_exporter({"0": {"idle": 0.7, "iowait": 0.1, "user": 0.2}, "1": {"idle": 0.3, "user": 0.6, "system": 0.1}}, 6 * GIB, 8 * GIB),
    ),
    Target("ne-b", {"instance": "node-b", "job": "node-exporter"}, node_exporter({"0": {"idle": 0.85, "steal": 0.05, "user": 0.1}}, 1 * GIB, 4 * GIB)),
)  # fmt: skip
EXPECTED = {"cpu": {"node-a": 45.0, "node-b": 10.0}, "mem": {"node-a": 25.0, "node-b": 75.0}}


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 16 rules found" in result.stdout


def test_the_prometheus_rule_manifest_holds_the_same_groups() -> None:
    manifest = yaml.safe_load(OPERATOR_RULES.read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


def test_the_header_maps_every_query_name_to_a_recorded_series() -> None:
    recorded = {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert set(QUERIES.values()) <= recorded
    header = RULES.read_text()
    for name, series in QUERIES.items():
        assert f"{name}:" in header and series in header


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with prometheus(tmp_path_factory.mktemp("rules"), TARGETS, rules=RULES) as server:
        yield server


def test_the_rules_give_the_hand_computed_percentages_per_node(prom: Prometheus) -> None:
    spec = load_sources({"prom": {"type": "prometheus", "url": prom.url, "queries": QUERIES}})["prom"]
    prom_source = PrometheusSource(spec, lambda: ())
    keys = tuple(QUERIES)

    def complete() -> bool:
        samples = prom_source.fetch(keys)
        return all(len(samples.get(key, {})) == 2 for key in keys)

    eventually(complete, timeout=30)  # irate needs two scrapes, then one rule evaluation
    samples = prom_source.fetch(keys)
    assert prom_source.partial_errors == {} and prom_source.warnings == {}
    for resource, by_node in EXPECTED.items():
        for node, percent in by_node.items():
            # 5m / 1h / 1d windows of a constant load agree; scrape-time jitter moves irate a little
            for window in ("avg_5m", "max_avg_1h", "max_avg_1d", "avg_1h", "avg_1d"):
                assert samples[f"{resource}_usage_{window}"][node].value == pytest.approx(percent, abs=1.5), (window, node)
            for window in ("stddev_1h", "stddev_1d"):
                assert 0 <= samples[f"{resource}_usage_{window}"][node].value < 1.5
    assert samples["mem_usage_avg_5m"]["node-a"].value == pytest.approx(25.0, abs=1e-9)  # no jitter in gauges
