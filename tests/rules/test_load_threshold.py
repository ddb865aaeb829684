"""Predicate load-threshold."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.load_threshold import LoadThresholdPredicate
from extender.sdk import Context, NodeView, PodView, Rejection

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
CPU5, CPU1H, MEM5 = (
    MetricRef("prometheus", key) for key in ("cpu_usage_avg_5m", "cpu_usage_max_avg_1h", "mem_usage_avg_5m")
)
POD = PodView("web-1", "default")
NODE = NodeView("n1", allocatable={"cpu": "8", "memory": "32Gi"})
DEFAULT = [
    {"metric": "cpu_usage_avg_5m", "max": 65},
    {"metric": "cpu_usage_max_avg_1h", "max": 75},
    {"metric": "mem_usage_avg_5m", "max": 65},
]


def make(**params: Any) -> LoadThresholdPredicate:
    return LoadThresholdPredicate(LoadThresholdPredicate.params_schema().load({"thresholds": DEFAULT, **params}))


def ctx(
    values: Mapping[MetricRef, float],
    *,
    age: float = 30.0,
    placements: tuple[tuple[str, float, Mapping[str, float]], ...] = (),
) -> Context:
    samples = {ref: {"n1": Sample(value, T - age)} for ref, value in values.items()}
    return Context(now=NOW, load=StaticLoad(samples, max_age=120.0, placements=placements))


def test_a_node_at_or_below_every_threshold_passes() -> None:
    assert make().filter(POD, NODE, ctx({CPU5: 65.0, CPU1H: 75.0, MEM5: 10.0})) is None


def test_the_first_threshold_exceeded_names_the_metric_and_limit() -> None:
    rule = make()
    assert rule.filter(POD, NODE, ctx({CPU5: 65.5, CPU1H: 80.0, MEM5: 10.0})) == Rejection(
        "node(s) had cpu_usage_avg_5m above 65%"
    )
    assert rule.filter(POD, NODE, ctx({CPU5: 20.0, CPU1H: 20.0, MEM5: 70.0})) == Rejection(
        "node(s) had mem_usage_avg_5m above 65%"
    )
    rejection = rule.filter(POD, NODE, ctx({CPU5: 20.0, CPU1H: 20.0, MEM5: 70.0}))
    assert rejection is not None and rejection.resolvable is False


def test_a_threshold_name_and_fractional_max_show_in_the_reason() -> None:
    rule = make(thresholds=[{"metric": 'avg(rate(x[5m])) by (node)', "max": 62.5, "name": "cpu-5m"}])
    ref = MetricRef("prometheus", "avg(rate(x[5m])) by (node)")
    assert rule.filter(POD, NODE, ctx({ref: 63.0})) == Rejection("node(s) had cpu-5m above 62.5%")


@pytest.mark.parametrize(
    "load",
    [
        {CPU1H: 10.0, MEM5: 10.0},  # no sample of cpu_usage_avg_5m
        {CPU5: math.nan, CPU1H: 10.0, MEM5: 10.0},  # not a number
        {CPU5: math.inf, CPU1H: 10.0, MEM5: 10.0},
    ],
)
def test_stale_allow_skips_the_threshold_and_deny_rejects(load: dict[MetricRef, float]) -> None:
    assert make().filter(POD, NODE, ctx(load)) is None
    assert make(onStale="deny").filter(POD, NODE, ctx(load)) == Rejection(
        "node(s) had no fresh load metric cpu_usage_avg_5m"
    )


def test_allow_still_applies_the_fresh_thresholds() -> None:
    assert make().filter(POD, NODE, ctx({CPU1H: 90.0})) == Rejection("node(s) had cpu_usage_max_avg_1h above 75%")


def test_samples_older_than_max_age_are_stale() -> None:
    old = ctx({CPU5: 99.0, CPU1H: 99.0, MEM5: 99.0}, age=121.0)  # source maxAge 120s
    assert make().filter(POD, NODE, old) is None
    assert make(onStale="deny").filter(POD, NODE, old) == Rejection("node(s) had no fresh load metric cpu_usage_avg_5m")
    # the rule's own maxAge overrides the source's
    recent = ctx({CPU5: 99.0, CPU1H: 10.0, MEM5: 10.0}, age=90.0)
    assert make(maxAge="1m").filter(POD, NODE, recent) is None
    assert make(maxAge="1m", onStale="deny").filter(POD, NODE, recent) == Rejection(
        "node(s) had no fresh load metric cpu_usage_avg_5m"
    )


def test_inflight_requests_are_added_as_percent_of_allocatable() -> None:
    # 50% measured, pods requesting 1.5 cores since the sample on 8 cores: 50 + 18.75 = 68.75 > 65
    load = {CPU5: 50.0, CPU1H: 50.0, MEM5: 10.0}
    placed = (("n1", T - 10, {"cpu": 1.0}), ("n1", T - 5, {"cpu": 0.5}))
    assert make().filter(POD, NODE, ctx(load, placements=placed)) is None  # in-flight off by default
    assert make(inflight={}).filter(POD, NODE, ctx(load, placements=placed)) == Rejection(
        "node(s) had cpu_usage_avg_5m above 65%"
    )
    # factor 0.5: 50 + 9.375 = 59.375 passes cpu_usage_avg_5m (and 1h's 75)
    assert make(inflight={"factor": 0.5}).filter(POD, NODE, ctx(load, placements=placed)) is None


def test_inflight_counts_pods_since_the_sample_minus_lag_only() -> None:
    load = {CPU5: 50.0, CPU1H: 50.0, MEM5: 10.0}  # sampled at T - 30
    earlier = (("n1", T - 40, {"cpu": 2.0}), ("other", T, {"cpu": 8.0}))  # 25% if counted
    assert make(inflight={}).filter(POD, NODE, ctx(load, placements=earlier)) is None
    assert make(inflight={"lag": "15s"}).filter(POD, NODE, ctx(load, placements=earlier)) == Rejection(
        "node(s) had cpu_usage_avg_5m above 65%"
    )


def test_memory_inflight_is_in_bytes_and_resource_is_inferred_or_given() -> None:
    # 60% + 4Gi of 32Gi (12.5%) = 72.5 > 65
    placed = (("n1", T, {"memory": 4.0 * 2**30}),)
    rule = make(thresholds=[{"metric": "mem_usage_avg_5m", "max": 65}], inflight={})
    assert rule.filter(POD, NODE, ctx({MEM5: 60.0}, placements=placed)) == Rejection(
        "node(s) had mem_usage_avg_5m above 65%"
    )
    gpu = MetricRef("prometheus", "gpu_util")
    given = make(thresholds=[{"metric": "gpu_util", "max": 60, "resource": "nvidia.com/gpu"}], inflight={})
    gpu_node = NodeView("n1", allocatable={"nvidia.com/gpu": "4"})
    # 1 of 4 GPUs is 25%: 30 + 25 = 55 passes, two pods: 30 + 50 = 80 does not
    assert given.filter(POD, gpu_node, ctx({gpu: 30.0}, placements=(("n1", T, {"nvidia.com/gpu": 1.0}),))) is None
    assert given.filter(POD, gpu_node, ctx({gpu: 30.0}, placements=(("n1", T, {"nvidia.com/gpu": 1.0}),) * 2)) == (
        Rejection("node(s) had gpu_util above 60%")
    )


@pytest.mark.parametrize(
    "odd",
    [
        NodeView("n1"),
        NodeView("n1", allocatable={"cpu": "0"}),
        NodeView("n1", allocatable={"memory": "1Gi"}),
        NodeView("n1", allocatable={"cpu": "lots"}),  # a malformed quantity: no share, no exception
    ],
)
def test_a_node_without_allocatable_adds_no_inflight(odd: NodeView) -> None:
    placed = (("n1", T, {"cpu": 100.0}),)
    assert make(inflight={}).filter(POD, odd, ctx({CPU5: 60.0, CPU1H: 60.0, MEM5: 60.0}, placements=placed)) is None


CLASSES = [
    {"name": "batch", "namespaces": ["batch"], "thresholds": [{"metric": "cpu_usage_avg_5m", "max": 85}]},
    {"name": "critical", "priorityClassNames": ["system-node-critical"], "exempt": True},
]


def test_pod_classes_replace_the_thresholds_or_exempt_their_pods() -> None:
    rule = make(podClasses=CLASSES)
    hot = ctx({CPU5: 80.0, CPU1H: 95.0, MEM5: 90.0})
    assert rule.filter(POD, NODE, hot) == Rejection("node(s) had cpu_usage_avg_5m above 65%")
    batch = PodView("job", "batch")
    assert rule.filter(batch, NODE, hot) is None  # only cpu_usage_avg_5m <= 85 applies
    assert rule.filter(batch, NODE, ctx({CPU5: 86.0})) == Rejection("node(s) had cpu_usage_avg_5m above 85%")
    critical = PodView("agent", "kube-system", priority_class_name="system-node-critical")
    assert rule.applies_to(critical, hot) is False and rule.filter(critical, NODE, hot) is None
    assert rule.applies_to(batch, hot) is True
    assert rule.cache_key(POD, hot) is None  # load verdicts change with time: never memoised


def test_metrics_are_every_threshold_once_from_the_source() -> None:
    extra = [{"metric": "mem_usage_max_avg_1h", "max": 90}, {"metric": "cpu_usage_avg_5m", "max": 1}]
    rule = make(source="crane", podClasses=[*CLASSES, {"name": "x", "namespaces": ["x"], "thresholds": extra}])
    keys = ["cpu_usage_avg_5m", "cpu_usage_max_avg_1h", "mem_usage_avg_5m", "mem_usage_max_avg_1h"]
    assert list(rule.metrics()) == [MetricRef("crane", k) for k in keys]
    assert rule.on_stale == "allow" and make(onStale="deny").on_stale == "deny"


POLICY = """
sources:
  prometheus: {type: prometheus, url: "http://prometheus:9090"}
predicates:
- type: load-threshold
  params:
    onStale: deny
    thresholds: [{metric: cpu_usage_avg_5m, max: 65}]
    inflight: {factor: 1.0}
"""


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text(POLICY)
    assert policy.sources["prometheus"].keys == {"cpu_usage_avg_5m"}
    nodes = [NodeView(n, allocatable={"cpu": "4"}) for n in ("cool", "hot", "busy", "silent")]
    samples = {CPU5: {"cool": Sample(40.0, T - 20), "hot": Sample(70.0, T - 20), "busy": Sample(50.0, T - 20)}}
    # busy: 50 + 1 core of 4 (25%) = 75 > 65
    load = StaticLoad(samples, placements=(("busy", T - 10, {"cpu": 1.0}),))
    decision = Engine(policy).filter(POD, nodes, Context(now=NOW, load=load))
    assert decision.passed == [0]
    assert decision.unresolvable == {
        "hot": "node(s) had cpu_usage_avg_5m above 65%",
        "busy": "node(s) had cpu_usage_avg_5m above 65%",
        "silent": "node(s) had no fresh load metric cpu_usage_avg_5m",
    }


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"predicates: [{{type: load-threshold, params: {params}}}]"
        )
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{}", ["thresholds: required"]),
        ("{thresholds: []}", ["thresholds: list at least one"]),
        (
            "{thresholds: [{metric: '', max: -1}, {max: 3}], onStale: neutral, maxAge: 0s, source: ''}",
            [
                "maxAge: must be greater than 0",
                "onStale: must be one of allow, deny",
                "source: must not be empty",
                "thresholds[0].max: must be a percentage >= 0",
                "thresholds[0].metric: must not be empty",
                "thresholds[1].metric: required",
            ],
        ),
        (
            "{thresholds: [{metric: gpu_util, max: 3}], inflight: {factor: -1, lag: -1s}}",
            ["inflight.factor: must be a non-negative number", "inflight.lag: must not be negative"],
        ),
        (
            "{thresholds: [{metric: gpu_util, max: 3}], inflight: {}, podClasses: ["
            "{name: a, namespaces: [x], thresholds: [{metric: load1, max: 2}]}]}",
            [
                "podClasses[0].thresholds[0].resource: required with inflight: 'load1' starts with neither cpu nor mem",
                "thresholds[0].resource: required with inflight: 'gpu_util' starts with neither cpu nor mem",
            ],
        ),
        (
            "{thresholds: [{metric: cpu_usage_avg_5m, max: 3}], podClasses: ["
            "{name: a, exempt: true}, {name: a, namespaces: [x]}, "
            "{name: b, namespaces: [x], exempt: true, thresholds: [{metric: x, max: 1}]}]}",
            [
                "podClasses[0]: give at least one of podSelector, namespaces, priorityClassNames",
                "podClasses[1]: give either thresholds or exempt: true",
                "podClasses[1].name: duplicate pod class name 'a'",
                "podClasses[2]: give either thresholds or exempt: true",
            ],
        ),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"predicates[0].params.{line}" for line in expected]


def test_a_source_the_policy_does_not_define_is_reported() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "predicates: [{type: load-threshold, params: {source: crane, thresholds: [{metric: m, max: 1}]}}]"
        )
    assert err.value.problems == [
        "predicates[load-threshold].params: reads 'm' from source 'crane', "
        "which sources: does not define (defined: none)"
    ]
