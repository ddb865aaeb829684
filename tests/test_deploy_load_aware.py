"""deploy/load-aware: names mode with a Prometheus source and load rules, rendered and checked.

The policy must validate, read only query names the shipped recording rules record, get
in-flight data from a pod cache the layout really enables, and need exactly the RBAC the
layout grants; its scheduler-config must be strict v1 and reach the Service.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import yaml

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import load_policy_text
from extender.sdk import Condition, Context, NodeView, PodView
from tests.test_deploy import (
    DEPLOY,
    extender_containers,
    features_of,
    mounted_policy,
    needed_rbac,
    one,
    rbac_grants,
    render,
    scheduler_config_problems,
    service_account_of,
    service_backend,
    settings_of,
)

LAYOUT = DEPLOY / "load-aware"


def rendered() -> list[dict[str, Any]]:
    return render(LAYOUT)


def recorded_series() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "recording-rules.yaml").read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_the_layout_runs_names_mode_with_node_and_pod_caches_and_its_own_policy() -> None:
    docs = rendered()
    ((where, pod, container, _),) = list(extender_containers({"load-aware": docs}))
    settings = settings_of(container)
    assert settings.node_cache and settings.pod_cache, where
    assert settings.served_workers == 1, "one worker: one node and one pod watch per replica"
    policy = mounted_policy(docs, pod, container)
    types = {r.rule.type_name for r in (*policy.predicates, *policy.priorities)}
    assert {"load-threshold", "placement-rate-limit", "least-loaded"} <= types
    assert set(policy.sources) == {"prometheus"}


def test_every_query_the_policy_reads_is_a_shipped_recording_rule() -> None:
    policy = load_policy_text((LAYOUT / "policy.yaml").read_text())
    spec = policy.sources["prometheus"]
    queries = spec.options["queries"]
    assert spec.keys and spec.keys <= set(queries), "every key the rules read is a named query"
    assert {queries[key] for key in spec.keys} <= recorded_series()


def test_rbac_is_exactly_what_the_layout_uses() -> None:
    docs = rendered()
    ((_, pod, container, _),) = list(extender_containers({"load-aware": docs}))
    assert features_of(docs, pod, container) == {"node-cache", "pod-cache"}
    deployment = one(docs, "Deployment", "extender", "extender-system")
    assert rbac_grants(docs, service_account_of(deployment)) == needed_rbac({"node-cache", "pod-cache"})


def test_scheduler_config_is_strict_v1_names_mode_without_bind() -> None:
    config = yaml.safe_load((LAYOUT / "scheduler-config.yaml").read_text())
    assert scheduler_config_problems(config) == []
    (ext,) = config["extenders"]
    service_backend(rendered(), ext["urlPrefix"])
    assert ext["nodeCacheCapable"] is True and "bindVerb" not in ext
    assert (ext["filterVerb"], ext["prioritizeVerb"]) == ("filter", "prioritize")


def test_the_example_policy_decides_as_documented_on_known_load() -> None:
    """Hand-made load on three nodes: one past the cpu threshold, one idle, one with no data."""
    policy = load_policy_text((LAYOUT / "policy.yaml").read_text())
    now = 1_800_000_000.0
    metric = {
        "cpu_usage_avg_5m": {"busy": 95.0, "idle": 10.0},
        "cpu_usage_max_avg_1h": {"busy": 90.0, "idle": 20.0},
        "cpu_usage_max_avg_1d": {"busy": 90.0, "idle": 20.0},
        "mem_usage_avg_5m": {"busy": 50.0, "idle": 10.0},
        "mem_usage_max_avg_1h": {"busy": 50.0, "idle": 10.0},
        "mem_usage_max_avg_1d": {"busy": 50.0, "idle": 10.0},
    }
    load = StaticLoad(
        {MetricRef("prometheus", k): {n: Sample(v, now - 10) for n, v in by.items()} for k, by in metric.items()}
    )
    ctx = Context(now=datetime.fromtimestamp(now, timezone.utc), load=load)
    nodes = [NodeView(n, conditions=(Condition("Ready", "True"),), allocatable={"cpu": "8", "memory": "32Gi"})
             for n in ("busy", "idle", "unknown")]  # fmt: skip
    engine = Engine(policy)
    pod = PodView("web-1", "default")
    decision = engine.filter(pod, nodes, ctx)
    assert decision.unresolvable == {"busy": "node(s) had cpu_usage_avg_5m above 80%"}
    assert decision.passed == [1, 2]  # no data: onStale allow keeps the default scheduler's judgement
    scores = engine.prioritize(pod, nodes[1:], ctx).scores
    assert scores == [10, 5]  # idle is the only valued node (10); unknown is neutral
