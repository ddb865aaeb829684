"""Priority least-loaded."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.least_loaded import LeastLoadedPriority
from extender.sdk import NEUTRAL, Context, NodeView, PodView
from extender.view import ContainerResources

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
KEYS = (
    "cpu_usage_avg_5m",
    "cpu_usage_max_avg_1h",
    "cpu_usage_max_avg_1d",
    "mem_usage_avg_5m",
    "mem_usage_max_avg_1h",
    "mem_usage_max_avg_1d",
)
C5, C1H, C1D, M5, M1H, M1D = (MetricRef("prometheus", k) for k in KEYS)
POD = PodView("web-1", "default")
NODE = NodeView("n1", allocatable={"cpu": "10", "memory": "32Gi"})
Placements = tuple[tuple[str, float, Mapping[str, float]], ...]


def make(**params: Any) -> LeastLoadedPriority:
    return LeastLoadedPriority(LeastLoadedPriority.params_schema().load(params))


def ctx(values: Mapping[MetricRef, float], *, age: float = 30.0, placements: Placements = ()) -> Context:
    samples = {ref: {"n1": Sample(value, T - age)} for ref, value in values.items()}
    return Context(now=NOW, load=StaticLoad(samples, max_age=120.0, placements=placements))


LOAD = {C5: 40.0, C1H: 50.0, C1D: 60.0, M5: 20.0, M1H: 30.0, M1D: 40.0}


def test_crane_default_windows_and_resources() -> None:
    # U_cpu = 0.2*40 + 0.3*50 + 0.5*60 = 53; U_mem = 0.2*20 + 0.3*30 + 0.5*40 = 33; 100 - 43
    assert make().score(POD, NODE, ctx(LOAD)) == pytest.approx(57.0)
    assert list(make().metrics()) == [C5, C1H, C1D, M5, M1H, M1D]


def test_inflight_requests_add_to_every_window() -> None:
    # 1 core of 10 placed since the samples: +10 on each cpu window: U_cpu = 63; 100 - (63 + 33) / 2
    placed: Placements = (("n1", T - 10, {"cpu": 1.0}),)
    assert make().score(POD, NODE, ctx(LOAD, placements=placed)) == pytest.approx(52.0)
    # 4Gi of 32Gi is 12.5 on each memory window: U_mem = 45.5; 100 - (53 + 45.5) / 2
    placed = (("n1", T - 10, {"memory": 4.0 * 2**30}),)
    assert make().score(POD, NODE, ctx(LOAD, placements=placed)) == pytest.approx(50.75)
    # factor 0.5 halves it; factor 0 turns it off; pods bound before the samples do not count
    placed = (("n1", T - 10, {"cpu": 1.0}),)
    assert make(inflight={"factor": 0.5}).score(POD, NODE, ctx(LOAD, placements=placed)) == pytest.approx(54.5)
    assert make(inflight={"factor": 0}).score(POD, NODE, ctx(LOAD, placements=placed)) == pytest.approx(57.0)
    before: Placements = (("n1", T - 40, {"cpu": 1.0}),)
    assert make().score(POD, NODE, ctx(LOAD, placements=before)) == pytest.approx(57.0)
    assert make(inflight={"lag": "20s"}).score(POD, NODE, ctx(LOAD, placements=before)) == pytest.approx(52.0)


def test_a_stale_window_is_left_out_and_the_others_renormalised() -> None:
    partial = {**LOAD, C1D: math.nan}  # cpu: (0.2*40 + 0.3*50) / 0.5 = 46; memory 33; 100 - 39.5
    assert make().score(POD, NODE, ctx(partial)) == pytest.approx(60.5)
    missing = {k: v for k, v in LOAD.items() if k is not C1D}
    assert make().score(POD, NODE, ctx(missing)) == pytest.approx(60.5)


@pytest.mark.parametrize(("on_stale", "expected"), [("neutral", NEUTRAL), ("allow", 100.0), ("deny", None)])
def test_a_resource_without_fresh_windows_gets_on_stale(on_stale: str, expected: object) -> None:
    no_cpu = {k: v for k, v in LOAD.items() if k not in (C5, C1H, C1D)}
    rule = make(onStale=on_stale)
    assert rule.on_stale == on_stale
    assert rule.score(POD, NODE, ctx(no_cpu)) == expected
    assert rule.score(POD, NODE, ctx(LOAD, age=121.0)) == expected  # all older than maxAge 120s
    assert rule.score(POD, NODE, ctx(LOAD, age=90.0)) == pytest.approx(57.0)
    assert make(onStale=on_stale, maxAge="1m").score(POD, NODE, ctx(LOAD, age=90.0)) == expected


def test_custom_resources_and_weights() -> None:
    rule = make(
        resources={
            "cpu": {"weight": 3, "windows": [{"metric": "cpu_usage_avg_5m", "weight": 1}]},
            "memory": {"windows": [{"metric": "mem_usage_avg_5m", "weight": 1}]},
        }
    )
    # (3 * 80 + 1 * 40) / 4 = 70
    assert rule.score(POD, NODE, ctx({C5: 80.0, M5: 40.0})) == pytest.approx(30.0)
    assert list(rule.metrics()) == [C5, M5]
    cpu_only = make(resources={"cpu": None})  # crane's cpu windows, no memory
    assert cpu_only.score(POD, NODE, ctx(LOAD)) == pytest.approx(47.0)
    gpu = make(resources={"nvidia.com/gpu": {"windows": [{"metric": "gpu_util", "weight": 1}]}}, source="dcgm")
    gpu_node = NodeView("n1", allocatable={"nvidia.com/gpu": "4"})
    ref = MetricRef("dcgm", "gpu_util")
    placed: Placements = (("n1", T, {"nvidia.com/gpu": 1.0}),)
    assert gpu.score(POD, gpu_node, ctx({ref: 30.0}, placements=placed)) == pytest.approx(45.0)  # 100 - (30 + 25)


def test_odd_nodes_never_raise() -> None:
    placed: Placements = (("n1", T, {"cpu": 4.0, "memory": 1e12}),)
    for odd in (
        NodeView("n1"),
        NodeView("n1", allocatable={"cpu": "0", "memory": "0"}),
        NodeView("n1", allocatable={"cpu": "lots", "memory": "-1"}),
    ):
        assert make().score(POD, odd, ctx(LOAD, placements=placed)) == pytest.approx(57.0)  # no in-flight share
    assert make().cache_key(POD, ctx(LOAD)) is None


POLICY = """
sources:
  prometheus: {type: prometheus, url: "http://prometheus:9090"}
priorities:
- type: least-loaded
  params:
    resources:
      cpu: {windows: [{metric: cpu_usage_avg_5m, weight: 1}]}
"""


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text(POLICY)
    assert policy.sources["prometheus"].keys == {"cpu_usage_avg_5m"}
    names = ("idle", "half", "busy", "unknown")
    nodes = [NodeView(n, allocatable={"cpu": "4"}) for n in names]
    samples = {C5: {"idle": Sample(10.0, T - 5), "half": Sample(50.0, T - 5), "busy": Sample(90.0, T - 5)}}
    decision = Engine(policy).prioritize(POD, nodes, Context(now=NOW, load=StaticLoad(samples)), explain=True)
    # raw 90, 50, 10, NEUTRAL: normalised 10, 5, 0 and the middle 5
    assert decision.breakdown["least-loaded"] == [10.0, 5.0, 0.0, 5.0]
    assert decision.scores == [10, 5, 0, 5]


# The burst: 5 identical nodes at equal measured load, 10 identical pods scheduled one
# after another. Each placement is appended to the placements the next cycle sees, as the
# pod cache and own binds would report it; metrics do not move in the meantime.
BURST_NODES = [NodeView(f"n{i}", allocatable={"cpu": "10", "memory": "32Gi"}) for i in range(5)]
BURST_POD = PodView("job", "default", containers=(ContainerResources(requests={"cpu": "1", "memory": "2Gi"}),))
BURST_POLICY = """
sources:
  prometheus: {type: prometheus, url: "http://prometheus:9090"}
priorities:
- type: least-loaded
  params:
    inflight: {factor: %s}
"""


def burst(factor: float, tie_break_last: bool) -> Counter[str]:
    engine = Engine(load_policy_text(BURST_POLICY % factor))
    samples = {ref: {n.name: Sample(40.0, T - 30) for n in BURST_NODES} for ref in (C5, C1H, C1D, M5, M1H, M1D)}
    placements: Placements = ()
    for i in range(10):
        load = StaticLoad(samples, placements=placements)
        scores = engine.prioritize(BURST_POD, BURST_NODES, Context(now=NOW, load=load)).scores
        best = max(scores)
        # kube-scheduler picks among equal best nodes at random: show both extremes
        ties = [index for index, score in enumerate(scores) if score == best]
        chosen = BURST_NODES[ties[-1] if tie_break_last else ties[0]]
        requests = {name: float(value) for name, value in BURST_POD.requests.items()}
        placements = (*placements, (chosen.name, T - 10 + i, requests))
    return Counter(name for name, _, _ in placements)


@pytest.mark.parametrize("tie_break_last", [False, True])
def test_inflight_accounting_spreads_a_burst(tie_break_last: bool) -> None:
    spread = burst(1.0, tie_break_last)
    assert len(spread) == 5 and set(spread.values()) == {2}
    piled = burst(0.0, tie_break_last)
    assert len(piled) == 1 and set(piled.values()) == {10}


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"priorities: [{{type: least-loaded, params: {params}}}]"
        )
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            "{onStale: skip, maxAge: -1m}",
            ["maxAge: must be greater than 0", "onStale: must be one of neutral, allow, deny"],
        ),
        ("{resources: {}}", ["resources: must be a non-empty mapping of resource name to {weight, windows}"]),
        ("{resources: [cpu]}", ["resources: must be a non-empty mapping of resource name to {weight, windows}"]),
        (
            "{resources: {cpu: {weight: 0}, gpu: {}, memory: {windows: [{metric: m, weight: -1}, {weight: 1}]}}}",
            [
                "resources.cpu.weight: must be greater than 0",
                "resources.gpu.windows: required for resources other than cpu and memory",
                "resources.memory.windows[0].weight: must be greater than 0",
                "resources.memory.windows[1].metric: required",
            ],
        ),
        ("{resources: {cpu: {windows: []}}}", ["resources.cpu.windows: list at least one"]),
        ("{inflight: {factor: nan}}", ["inflight.factor: Special numeric values (nan or infinity) are not permitted."]),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"priorities[0].params.{line}" for line in expected]
