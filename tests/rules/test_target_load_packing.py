"""Priority target-load-packing (Trimaran TargetLoadPacking); expected values computed by hand."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.target_load_packing import TargetLoadPackingPriority, target_load_score
from extender.sdk import NEUTRAL, Context, NodeView, PodView
from extender.view import ContainerResources

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
CPU = MetricRef("prometheus", "cpu_usage_avg_5m")
NODE = NodeView("n1", capacity={"cpu": "4"}, allocatable={"cpu": "3500m"})


def container(requests: Mapping[str, str] | None = None, limits: Mapping[str, str] | None = None) -> ContainerResources:
    return ContainerResources("c", requests=requests or {}, limits=limits or {})


REQUESTS_500M = PodView("p", "default", containers=(container({"cpu": "500m"}),))


def make(**params: Any) -> TargetLoadPackingPriority:
    return TargetLoadPackingPriority(TargetLoadPackingPriority.params_schema().load(params))


def ctx(percent: float | None = 20.0, age: float = 10.0, placements: tuple[Any, ...] = ()) -> Context:
    samples = {CPU: {"n1": Sample(percent, T - age)}} if percent is not None else {}
    return Context(now=NOW, load=StaticLoad(samples, placements=placements))


def test_score_curve_rises_to_the_target_then_falls_to_zero_at_100() -> None:
    assert target_load_score(0, 40) == 40
    assert target_load_score(20, 40) == 70  # 60 * 20 / 40 + 40
    assert target_load_score(40, 40) == 100
    assert target_load_score(70, 40) == 20  # 40 * 30 / 60
    assert target_load_score(100, 40) == 0
    assert target_load_score(100.5, 40) == 0


def test_container_with_requests_only_is_predicted_at_requests_times_multiplier() -> None:
    # 0.8 used + 0.5 * 1.5 = 1.55 cores of 4: U = 38.75, score = 60 * 38.75 / 40 + 40
    assert make().score(REQUESTS_500M, NODE, ctx(20)) == 98.125
    # 2 + 0.75 = 2.75 of 4: U = 68.75, score = 40 * 31.25 / 60
    assert make().score(REQUESTS_500M, NODE, ctx(50)) == pytest.approx(20.833333333)


def test_limit_wins_over_requests_and_default_applies_without_either() -> None:
    limited = PodView("p", "default", containers=(container({"cpu": "500m"}, {"cpu": "2"}),))
    assert make().score(limited, NODE, ctx(20)) == pytest.approx(20)  # U = 100 * 2.8 / 4 = 70
    bare = PodView("p", "default", containers=(container(),))
    assert make().score(bare, NODE, ctx(20)) == pytest.approx(36.666666667)  # U = 45: 40 * 55 / 60
    assert make(defaultRequests={"cpu": "200m"}).score(bare, NODE, ctx(20)) == 77.5  # U = 25: 60 * 25 / 40 + 40


def test_containers_and_overhead_add_up_and_init_containers_are_ignored() -> None:
    pod = PodView(
        "p",
        "default",
        containers=(container({"cpu": "250m"}), container()),
        init_containers=(container({"cpu": "8"}),),
        overhead={"cpu": "250m"},
    )
    # 0.8 + 0.375 + 1 + 0.25 = 2.425 of 4: U = 60.625, score = 40 * 39.375 / 60
    assert make().score(pod, NODE, ctx(20)) == pytest.approx(26.25)


def test_multiplier_and_target_are_configurable() -> None:
    # 0.8 + 0.5 * 2 = 1.8 of 4: U = 45 <= 60, score = 40 * 45 / 60 + 60
    assert make(defaultRequestsMultiplier=2, targetUtilization=60).score(REQUESTS_500M, NODE, ctx(20)) == 90
    assert make(targetUtilization=100).score(REQUESTS_500M, NODE, ctx(20)) == 100  # 0 * U / 100 + 100


def test_predicted_above_capacity_scores_zero() -> None:
    bare = PodView("p", "default", containers=(container(),))
    assert make().score(bare, NODE, ctx(90)) == 0  # U = 100 * 4.6 / 4 = 115


def test_capacity_is_the_denominator_and_allocatable_the_fallback() -> None:
    bare = PodView("p", "default", containers=(container(),))
    # the sample is 15 % of capacity: 0.6 + 1 = 1.6 of 4 = 40 % = the target
    assert make().score(bare, NODE, ctx(15)) == 100
    no_capacity = NodeView("n1", allocatable={"cpu": "2"})
    # 15 % of 2 = 0.3, + 1 = 1.3 of 2: U = 65, score = 40 * 35 / 60
    assert make().score(bare, no_capacity, ctx(15)) == pytest.approx(23.333333333)


def test_inflight_pods_count_at_requests_times_multiplier_within_the_lag() -> None:
    bare = PodView("p", "default", containers=(container(),))
    recent = (("n1", T - 5, {"cpu": 1.0}),)
    # 0.8 + 1 + 1 * 1.5 = 3.3 of 4: U = 82.5, score = 40 * 17.5 / 60
    assert make().score(bare, NODE, ctx(20, placements=recent)) == pytest.approx(11.666666667)
    # sample at T-10, lag 60s: bound at T-65 still counts, at T-75 it is in the sample already
    assert make().score(bare, NODE, ctx(20, placements=(("n1", T - 65, {"cpu": 1.0}),))) == pytest.approx(
        11.666666667
    )
    assert make().score(bare, NODE, ctx(20, placements=(("n1", T - 75, {"cpu": 1.0}),))) == pytest.approx(
        36.666666667
    )
    # own factor: 0.8 + 1 + 1 = 2.8 of 4 = 70 %
    assert make(inflight={"factor": 1}).score(bare, NODE, ctx(20, placements=recent)) == pytest.approx(20)
    # the multiplier is the default factor: 0.8 + 1 + 1 * 2 = 3.8 of 4 = 95 %, 40 * 5 / 60
    assert make(defaultRequestsMultiplier=2).score(bare, NODE, ctx(20, placements=recent)) == pytest.approx(
        3.333333333
    )
    other_node = (("n2", T - 5, {"cpu": 1.0}),)
    assert make().score(bare, NODE, ctx(20, placements=other_node)) == pytest.approx(36.666666667)


@pytest.mark.parametrize(
    "context",
    [ctx(None), ctx(20, age=121), ctx(float("nan")), ctx(float("inf"))],
    ids=["missing", "old", "nan", "inf"],
)
def test_stale_or_odd_samples_take_on_stale(context: Context) -> None:
    assert make().score(REQUESTS_500M, NODE, context) is NEUTRAL
    assert make(onStale="allow").score(REQUESTS_500M, NODE, context) == 100
    assert make(onStale="deny").score(REQUESTS_500M, NODE, context) is None


def test_max_age_overrides_the_sources() -> None:
    assert make(maxAge="5s").score(REQUESTS_500M, NODE, ctx(20, age=10)) is NEUTRAL
    assert make(maxAge="5m").score(REQUESTS_500M, NODE, ctx(20, age=200)) == 98.125


def test_node_without_cpu_takes_on_stale() -> None:
    assert make(onStale="deny").score(REQUESTS_500M, NodeView("n1"), ctx(20)) is None
    assert make().score(REQUESTS_500M, NodeView("n1", capacity={"cpu": "0"}), ctx(20)) is NEUTRAL


def test_metrics_name_the_source_and_metric() -> None:
    assert make().metrics() == (CPU,)
    assert make(source="vm", metric="node_cpu").metrics() == (MetricRef("vm", "node_cpu"),)


POLICY = """
sources:
  prometheus: {type: prometheus, url: "http://prometheus:9090"}
priorities:
- type: target-load-packing
  params: {targetUtilization: 40}
"""


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text(POLICY)
    assert policy.sources["prometheus"].keys == frozenset({"cpu_usage_avg_5m"})
    nodes = [NodeView(name, capacity={"cpu": "4"}) for name in ("a", "b", "c")]
    load = StaticLoad({CPU: {"a": Sample(20, T - 10), "b": Sample(50, T - 10)}})
    # raw: a 98.125, b 20.83, c stale (neutral): a 10, b 0, c 5
    assert Engine(policy).prioritize(REQUESTS_500M, nodes, Context(NOW, load)).scores == [10, 0, 5]


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"priorities: [{{type: target-load-packing, params: {params}}}]"
        )
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{targetUtilization: 0}", ["targetUtilization: must be a percentage in (0, 100]"]),
        ("{targetUtilization: 101}", ["targetUtilization: must be a percentage in (0, 100]"]),
        ("{defaultRequests: {cpu: lots}}", ["defaultRequests.cpu: not a CPU quantity: 'lots' (use e.g. 1000m or 1)"]),
        ("{defaultRequests: {cpu: -1}}", ["defaultRequests.cpu: must be a non-negative CPU quantity"]),
        ("{defaultRequestsMultiplier: -1}", ["defaultRequestsMultiplier: must be a non-negative number"]),
        (
            "{inflight: {factor: -1, lag: soon}}",
            [
                "inflight.factor: must be a non-negative number",
                "inflight.lag: not a duration: 'soon' (use e.g. 90s, 30m, 1h30m, 2d)",
            ],
        ),
        ("{onStale: maybe}", ["onStale: must be one of neutral, allow, deny"]),
        ("{metric: ''}", ["metric: must not be empty"]),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"priorities[0].params.{line}" for line in expected]


def test_an_undefined_source_is_reported() -> None:
    assert any("source" in line and "vm" in line for line in problems("{source: vm}"))


ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 100.0, 1e308, float("nan")])
)


@settings(max_examples=200, deadline=None)
@given(percent=ODD, cores=st.sampled_from(["0", "1m", "4", "1000000", "-2"]), inflight=ODD)
def test_odd_data_never_raises_and_scores_stay_in_0_to_100(percent: float, cores: str, inflight: float) -> None:
    node = NodeView("n1", capacity={"cpu": cores})
    placements = (("n1", T, {"cpu": inflight}),)
    score = make(onStale="deny").score(REQUESTS_500M, node, ctx(percent, placements=placements))
    assert score is None or 0 <= score <= 100
