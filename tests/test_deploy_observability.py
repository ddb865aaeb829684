"""deploy/observability: the alerts pass promtool (and its unit tests), the Prometheus
Operator manifest holds the same groups, and every series the alerts and the Grafana
dashboard query is one a real /metrics exposes (histogram and counter suffixes included)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from extender.telemetry import metrics
from tests.conftest import eventually, make_app
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import live_extender, write_kubeconfig
from tests.kube.test_cache_metrics import LOAD_RULE, SOURCES
from tests.kube.test_names_mode import POLICY
from tests.load.prometheus_server import PROMTOOL
from tests.test_metrics import ROUND

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "observability"
ALERTS = DEPLOY / "alert-rules.yaml"
#: series Prometheus makes itself for every target, not the extender
SYNTHETIC = {"up"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", expr, re.S)  # a Grafana variable's query
    if values:
        expr = values.group(1)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if match.group(0) in _KEYWORDS or expr[match.end():].lstrip().startswith("("):
            continue
        names.add(match.group(0))
    return names


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def names_in(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every sample name a real ``extender serve`` exposes with a node cache, a metric source
    and bind after the recorded calls, plus what the hooks other components call (decision
    records, rule timing, reloads) add to /metrics."""
    tmp_path = tmp_path_factory.mktemp("observability")
    with FakeApiServer(metrics_server=True) as apiserver:
        apiserver.set_node_metrics("node-00001", "500m", "1Gi")
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
        policy = POLICY.replace("priorities:\n", LOAD_RULE + "priorities:\n") + SOURCES
        with live_extender(tmp_path, kubeconfig, policy) as live:
            eventually(live.ready)
            for verb, body, content_type, _ in ROUND:
                requests.post(f"{live.url}/scheduler/{verb}", data=body, headers={"Content-Type": content_type}, timeout=10)
            eventually(lambda: "extender_source_newest_sample_timestamp_seconds" in names_in(live.get("/metrics").text))
            names = names_in(live.get("/metrics").text)
    metrics.observe_decision(
        {"verb": "filter", "outcome": "answered", "rejected": [{"rule": "r", "reason": "why", "count": 1}],
         "shadow": [{"rule": "s", "wouldReject": 1}]}
    )  # fmt: skip
    metrics.observe_rule_seconds("r", 0.001)
    metrics.policy_reload_failed()
    metrics.event_counted("posted")
    names |= names_in(make_app().test_client().get("/metrics").get_data(as_text=True))
    yield names


def test_the_extractor_finds_metric_names_only() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, verb) (rate(a_bucket{job=~"$job", x!="y"}[$__rate_interval]))) > 4'
    assert metric_names(expr) == {"a_bucket"}
    assert metric_names("time() - b > c and on (pod) d offset 5m") == {"b", "c", "d"}
    assert metric_names("label_values(e_count, job)") == {"e_count"}
    assert metric_names('count(count by (digest) (f{job="extender"} == 1)) > 1') == {"f"}


def test_promtool_accepts_the_alerts_and_they_fire_as_their_unit_tests_say() -> None:
    check = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_exprs())} rules found" in check.stdout
    unit = subprocess.run([PROMTOOL, "test", "rules", "alert-rules.test.yaml"], capture_output=True, text=True, timeout=60, cwd=DEPLOY)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_the_prometheus_rule_manifest_holds_the_same_groups() -> None:
    manifest = yaml.safe_load((DEPLOY / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"] == yaml.safe_load(ALERTS.read_text())


def test_the_alerts_cover_down_latency_errors_and_staleness() -> None:
    names = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert {"ExtenderDown", "ExtenderAbsent", "ExtenderLatencyNearHttpTimeout", "ExtenderErrorRate",
            "ExtenderCacheDisconnected", "ExtenderCacheStale", "ExtenderMetricSourceStale"} <= names  # fmt: skip


@pytest.mark.parametrize("where", ["alerts", "dashboard"])
def test_every_queried_series_is_exposed_by_a_real_metrics_endpoint(where: str, exposed: set[str]) -> None:
    exprs = alert_exprs() if where == "alerts" else dashboard_exprs()
    queried = set().union(*map(metric_names, exprs))
    assert queried, "the extractor found nothing"
    assert queried - exposed - SYNTHETIC == set()


def test_the_dashboard_shows_every_metric_family() -> None:
    queried = set().union(*map(metric_names, dashboard_exprs()))
    for metric in metrics.ALL:
        family = metric._name  # noqa: SLF001 - prometheus_client keeps it there
        assert any(name == family or name.startswith(f"{family}_") for name in queried), family


def test_the_pod_monitor_scrapes_the_metrics_path_as_job_extender() -> None:
    monitor: dict[str, Any] = yaml.safe_load((DEPLOY / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor" and monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    deployment = yaml.safe_load((DEPLOY.parent / "extender" / "deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "extender"
    assert labels.items() >= monitor["spec"]["selector"]["matchLabels"].items()
    ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", ())}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        refs = [t["refId"] for t in panel.get("targets", ())]
        assert len(refs) == len(set(refs)), panel["title"]
        if panel["type"] != "row":
            assert refs and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "job"}


def test_the_readme_lists_every_series() -> None:
    readme = (DEPLOY.parents[1] / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    for metric in metrics.ALL:
        name = metric._name + ("_total" if metric._type == "counter" else "")  # noqa: SLF001
        assert f"| `{name}` | {metric._type} |" in section, name  # noqa: SLF001
