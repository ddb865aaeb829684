"""Priority load-variation-risk (Trimaran LoadVariationRiskBalancing); expected values computed by hand."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.load_variation_risk import LoadVariationRiskPriority, resource_score
from extender.sdk import NEUTRAL, Context, NodeView, PodView
from extender.view import ContainerResources

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
GI = 2**30
CPU_MEAN, CPU_SD = MetricRef("prometheus", "cpu_usage_avg_1h"), MetricRef("prometheus", "cpu_usage_stddev_1h")
MEM_MEAN, MEM_SD = MetricRef("prometheus", "mem_usage_avg_1h"), MetricRef("prometheus", "mem_usage_stddev_1h")
NODE = NodeView("n1", allocatable={"cpu": "4", "memory": "8Gi"})


def pod(**requests: str) -> PodView:
    return PodView("p", "default", containers=(ContainerResources("c", requests=requests),))


ONE_CORE = pod(cpu="1")


def make(**params: Any) -> LoadVariationRiskPriority:
    return LoadVariationRiskPriority(LoadVariationRiskPriority.params_schema().load(params))


def ctx(
    cpu: tuple[float, float] | None = (30, 10),
    memory: tuple[float, float] | None = (50, 20),
    age: float = 10.0,
    placements: tuple[Any, ...] = (),
) -> Context:
    samples: dict[MetricRef, dict[str, Sample]] = {}
    for (mean_ref, sd_ref), values in (((CPU_MEAN, CPU_SD), cpu), ((MEM_MEAN, MEM_SD), memory)):
        if values is not None:
            samples[mean_ref] = {"n1": Sample(values[0], T - age)}
            samples[sd_ref] = {"n1": Sample(values[1], T - age)}
    return Context(now=NOW, load=StaticLoad(samples, placements=placements))


def test_resource_score_is_one_minus_half_of_mean_plus_margin_sigma() -> None:
    # mu = (1.2 + 1) / 4 = 0.55, sigma = 0.1: risk 0.325
    assert resource_score(30, 10, 1.0, 4.0, 1, 1) == pytest.approx(67.5)
    # sigma = 2 * 0.1^(1/2) = 0.63246: risk = (0.55 + 0.63246) / 2
    assert resource_score(30, 10, 1.0, 4.0, 2, 2) == pytest.approx(40.8772234)
    assert resource_score(30, 10, 1.0, 4.0, 20, 1) == pytest.approx(22.5)  # sigma capped at 1
    assert resource_score(30, 10, 1.0, 4.0, 1, 0) == pytest.approx(72.5)  # sensitivity 0: sigma^inf = 0
    assert resource_score(30, 100, 1.0, 4.0, 1, 0) == pytest.approx(22.5)  # ... but 1^inf = 1: (0.55 + 1) / 2
    assert resource_score(150, -5, 0.0, 4.0, 1, 1) == pytest.approx(50)  # mean capped at 100 %, sd at 0
    assert resource_score(90, 0, 2.0, 4.0, 1, 1) == pytest.approx(50)  # mu capped at 1


def test_the_riskiest_resource_decides() -> None:
    # cpu 67.5; memory: mu 0.5, sigma 0.2, risk 0.35 -> 65
    assert make().score(ONE_CORE, NODE, ctx()) == pytest.approx(65)
    assert make(resources={"cpu": {"mean": "cpu_usage_avg_1h", "stddev": "cpu_usage_stddev_1h"}}).score(
        ONE_CORE, NODE, ctx()
    ) == pytest.approx(67.5)


def test_margin_and_sensitivity_apply_to_every_resource() -> None:
    # cpu 40.877; memory: sigma = 2 * 0.2^(1/2) = 0.894427, risk 0.697214 -> 30.2786
    rule = make(safeVarianceMargin=2, safeVarianceSensitivity=2)
    assert rule.score(ONE_CORE, NODE, ctx()) == pytest.approx(30.2786405)


def test_the_pods_memory_request_adds_to_the_mean() -> None:
    # memory: mu = (4Gi + 2Gi) / 8Gi = 0.75, sigma 0.2, risk 0.475 -> 52.5; cpu without request: mu 0.3 -> 80
    assert make().score(pod(memory="2Gi"), NODE, ctx()) == pytest.approx(52.5)


def test_inflight_requests_add_to_the_mean_since_the_sample() -> None:
    after = (("n1", T - 5, {"cpu": 1.0, "memory": 0.0}),)
    # cpu: mu = (1.2 + 1 + 1) / 4 = 0.8, risk 0.45 -> 55 (memory 65)
    assert make().score(ONE_CORE, NODE, ctx(placements=after)) == pytest.approx(55)
    # factor 0.5: mu = (1.2 + 1 + 0.5) / 4 = 0.675, risk 0.3875 -> 61.25
    assert make(inflight={"factor": 0.5}).score(ONE_CORE, NODE, ctx(placements=after)) == pytest.approx(61.25)
    before = (("n1", T - 30, {"cpu": 1.0}),)  # the sample (T-10) already holds it ...
    assert make().score(ONE_CORE, NODE, ctx(placements=before)) == pytest.approx(65)
    # ... unless the window lags: since T-10-60
    assert make(inflight={"lag": "1m"}).score(ONE_CORE, NODE, ctx(placements=before)) == pytest.approx(55)


def test_resources_without_data_are_left_out() -> None:
    assert make().score(ONE_CORE, NODE, ctx(memory=None)) == pytest.approx(67.5)
    cpu_only_node = NodeView("n1", allocatable={"cpu": "4"})
    assert make().score(ONE_CORE, cpu_only_node, ctx()) == pytest.approx(67.5)
    partial = StaticLoad(
        {
            CPU_MEAN: {"n1": Sample(30, T - 10)},
            CPU_SD: {"n1": Sample(10, T - 10)},
            MEM_MEAN: {"n1": Sample(50, T - 10)},
            MEM_SD: {"n1": Sample(float("nan"), T - 10)},
        }
    )
    assert make().score(ONE_CORE, NODE, Context(NOW, partial)) == pytest.approx(67.5)


@pytest.mark.parametrize(
    "context",
    [ctx(None, None), ctx(age=121), ctx((float("nan"), 1), (50, float("inf")))],
    ids=["missing", "old", "not-finite"],
)
def test_no_resource_with_data_takes_on_stale(context: Context) -> None:
    assert make().score(ONE_CORE, NODE, context) is NEUTRAL
    assert make(onStale="allow").score(ONE_CORE, NODE, context) == 100
    assert make(onStale="deny").score(ONE_CORE, NODE, context) is None
    assert make().score(ONE_CORE, NodeView("n1"), ctx()) is NEUTRAL  # no allocatable at all


def test_metrics_are_the_mean_and_stddev_of_each_resource() -> None:
    assert make().metrics() == (CPU_MEAN, CPU_SD, MEM_MEAN, MEM_SD)
    rule = make(source="vm", resources={"memory": {"mean": "m", "stddev": "s"}, "cpu": {"mean": "c", "stddev": "d"}})
    assert rule.metrics() == tuple(MetricRef("vm", key) for key in ("c", "d", "m", "s"))


POLICY = """
sources:
  prometheus: {type: prometheus, url: "http://prometheus:9090"}
priorities:
- type: load-variation-risk
  params: {safeVarianceMargin: 1, safeVarianceSensitivity: 1}
"""


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text(POLICY)
    assert policy.sources["prometheus"].keys == frozenset(ref.key for ref in (CPU_MEAN, CPU_SD, MEM_MEAN, MEM_SD))
    nodes = [NodeView(name, allocatable={"cpu": "4", "memory": "8Gi"}) for name in ("a", "b", "c")]
    values = {CPU_MEAN: (30, 10), CPU_SD: (10, 0), MEM_MEAN: (50, 20), MEM_SD: (20, 0)}
    load = StaticLoad({ref: {"a": Sample(a, T - 10), "b": Sample(b, T - 10)} for ref, (a, b) in values.items()})
    # a: 65 (as above); b: cpu mu (0.4 + 1) / 4 = 0.35 -> 82.5, memory mu 0.2 -> 90: 82.5; c: stale, neutral
    assert Engine(policy).prioritize(ONE_CORE, nodes, Context(NOW, load)).scores == [0, 10, 5]


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"priorities: [{{type: load-variation-risk, params: {params}}}]"
        )
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{resources: {}}", ["resources: must map cpu and/or memory to {mean: <metric>, stddev: <metric>}"]),
        (
            "{resources: {gpu: {mean: a, stddev: b}, cpu: {mean: a}, memory: 5}}",
            [
                "resources.cpu.stddev: required",
                "resources.gpu: not a resource this rule reads (use cpu, memory)",
                "resources.memory: must be {mean, stddev}",
            ],
        ),
        (
            "{safeVarianceMargin: -1, safeVarianceSensitivity: x}",
            ["safeVarianceMargin: must be a non-negative number", "safeVarianceSensitivity: must be a number"],
        ),
        ("{inflight: {lag: -1s}}", ["inflight.lag: must not be negative"]),
        ("{onStale: allowed}", ["onStale: must be one of neutral, allow, deny"]),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"priorities[0].params.{line}" for line in expected]


ODD = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 100.0, 1e308]))


@settings(max_examples=200, deadline=None)
@given(
    values=st.tuples(ODD, ODD, ODD, ODD),
    inflight=ODD,
    margin=st.floats(0, 1e6),
    sensitivity=st.floats(0, 1e6),
    memory=st.sampled_from(["0", "1", "8Gi", "-1"]),
)
def test_odd_data_never_raises_and_scores_stay_in_0_to_100(
    values: tuple[float, float, float, float], inflight: float, margin: float, sensitivity: float, memory: str
) -> None:
    rule = make(safeVarianceMargin=margin, safeVarianceSensitivity=sensitivity, onStale="deny")
    node = NodeView("n1", allocatable={"cpu": "4", "memory": memory})
    placements = (("n1", T, {"cpu": inflight, "memory": inflight}),)
    context = ctx((values[0], values[1]), (values[2], values[3]), placements=placements)
    score = rule.score(ONE_CORE, node, context)
    assert score is None or 0 <= score <= 100
