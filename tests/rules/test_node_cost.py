"""Priority node-cost."""

from __future__ import annotations

from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from extender.engine import ConfiguredRule, Engine, Policy
from extender.policy import PolicyError, load_policy_text
from extender.rules.node_cost import (
    MIN_GAP,
    NodeCostPriority,
    PodClass,
    price_spread,
    tier_offset,
)
from extender.sdk import Context, NodeView, PodView

CTX = Context(now=datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))
ITYPE, CTYPE = "node.kubernetes.io/instance-type", "karpenter.sh/capacity-type"
PRICES = {
    "m5.xlarge": {"on-demand": 0.192, "spot": 0.0672},
    "r5.2xlarge": {"on-demand": 0.504, "spot": 0.1512},
    "c5.4xlarge": {"on-demand": 0.68, "spot": 0.2448},
}
CLASSES = [
    {"name": "batch", "podSelector": {"matchLabels": {"workload": "batch"}}, "prefer": ["spot"]},
    {"name": "critical", "priorityClassNames": ["system-cluster-critical"], "avoid": ["spot"]},
]
PLAIN = PodView("web-1", "default")
BATCH = PodView("job-1", "batch", labels={"workload": "batch"})
CRITICAL = PodView("dns-1", "kube-system", priority_class_name="system-cluster-critical")


def make(**params: Any) -> NodeCostPriority:
    return NodeCostPriority(NodeCostPriority.params_schema().load({"prices": PRICES, **params}))


def node(itype: str | None, ctype: str | None = "on-demand", name: str = "n1", **allocatable: str) -> NodeView:
    labels = {k: v for k, v in ((ITYPE, itype), (CTYPE, ctype)) if v is not None}
    return NodeView(name, labels=labels, allocatable=allocatable)


def test_cheaper_node_scores_higher_without_a_pod_class() -> None:
    rule = make()
    assert rule.score(PLAIN, node("m5.xlarge"), CTX) == -0.192
    assert rule.score(PLAIN, node("m5.xlarge", "spot"), CTX) == -0.0672


def test_missing_capacity_type_label_uses_the_default_capacity_type() -> None:
    assert make().score(PLAIN, node("r5.2xlarge", None), CTX) == -0.504
    assert make(defaultCapacityType="spot").score(PLAIN, node("r5.2xlarge", None), CTX) == -0.1512


def test_label_names_are_configurable() -> None:
    rule = make(
        instanceTypeLabel="beta.kubernetes.io/instance-type", capacityTypeLabel="eks.amazonaws.com/capacityType"
    )
    labels = {"beta.kubernetes.io/instance-type": "m5.xlarge", "eks.amazonaws.com/capacityType": "spot"}
    assert rule.score(PLAIN, NodeView("n1", labels=labels), CTX) == -0.0672
    assert rule.score(PLAIN, node("m5.xlarge", "spot"), CTX) is None  # the default labels are not read


@pytest.mark.parametrize("unpriced", [node("t3.micro"), node(None), node("m5.xlarge", "reserved")])
def test_unpriced_node_has_no_value_unless_unknown_price_is_set(unpriced: NodeView) -> None:
    assert make().score(PLAIN, unpriced, CTX) is None
    assert make(unknownPrice=1.0).score(PLAIN, unpriced, CTX) == -1.0
    assert make(podClasses=CLASSES).score(BATCH, unpriced, CTX) is None


def test_per_cpu_and_memory_divide_by_allocatable_cores_and_gib() -> None:
    m5 = node("m5.xlarge", cpu="3920m", memory="16Gi")
    assert make(per="cpu").score(PLAIN, m5, CTX) == -(0.192 / 3.92)
    assert make(per="memory").score(PLAIN, m5, CTX) == -(0.192 / 16)


def test_allocatable_below_one_core_or_gib_counts_as_one() -> None:
    tiny = node("m5.xlarge", cpu="500m", memory="512Mi")
    assert make(per="cpu").score(PLAIN, tiny, CTX) == -0.192
    assert make(per="memory").score(PLAIN, tiny, CTX) == -0.192


@pytest.mark.parametrize("empty", [node("m5.xlarge"), node("m5.xlarge", cpu="0", memory="0")])
def test_no_allocatable_is_treated_like_an_unknown_price(empty: NodeView) -> None:
    for per in ("cpu", "memory"):
        assert make(per=per).score(PLAIN, empty, CTX) is None
        assert make(per=per, unknownPrice=2.5).score(PLAIN, empty, CTX) == -2.5


def test_tier_offsets_are_the_smallest_keeping_a_point_between_tiers() -> None:
    spread = 0.68 - 0.0672
    assert price_spread(make().spec) == spread
    assert price_spread(make(unknownPrice=1.0).spec) == 1.0 - 0.0672
    assert price_spread(make(per="cpu").spec) == 0.68
    assert price_spread(make(per="memory", unknownPrice=1.0).spec) == 1.0
    one_sided = PodClass("a", prefer=frozenset({"spot"}))
    two_sided = PodClass("b", prefer=frozenset({"spot"}), avoid=frozenset({"on-demand"}))
    assert tier_offset(spread, one_sided) == spread * (10 + MIN_GAP) / (10 - MIN_GAP)
    assert tier_offset(spread, two_sided) == spread * (10 + MIN_GAP) / (10 - 2 * MIN_GAP)
    assert tier_offset(0.0, one_sided) == 1.0


def test_pod_classes_shift_preferred_and_avoided_capacity_types() -> None:
    rule = make(podClasses=CLASSES)
    prefer, avoid = (tier_offset(price_spread(rule.spec), c) for c in rule.spec.pod_classes)
    assert rule.score(BATCH, node("c5.4xlarge", "spot"), CTX) == prefer - 0.2448
    assert rule.score(BATCH, node("m5.xlarge", "on-demand"), CTX) == -0.192
    assert rule.score(CRITICAL, node("m5.xlarge", "spot"), CTX) == -avoid - 0.0672
    assert rule.score(CRITICAL, node("c5.4xlarge", "on-demand"), CTX) == -0.68


def test_pod_class_matchers_are_anded_and_the_first_match_wins() -> None:
    classes = [
        {
            "name": "a",
            "namespaces": ["batch"],
            "podSelector": {"matchLabels": {"workload": "batch"}},
            "prefer": ["spot"],
        },
        {"name": "b", "podSelector": {}, "avoid": ["spot"]},  # an empty selector: every other pod
    ]
    rule = make(podClasses=classes)
    prefer, avoid = (tier_offset(price_spread(rule.spec), c) for c in rule.spec.pod_classes)
    spot = node("m5.xlarge", "spot")
    assert rule.score(BATCH, spot, CTX) == prefer - 0.0672  # class a
    for pod in (PodView("x", "batch"), PodView("x", "default", labels={"workload": "batch"}), PLAIN):
        assert rule.score(pod, spot, CTX) == -avoid - 0.0672  # class b


REAL = [
    node(t, c, f"{t}-{c}", cpu=cpu)
    for t, cpu in zip(PRICES, ("3920m", "7910m", "15890m"))
    for c in ("on-demand", "spot")
]
# REAL order: m5 on-demand, m5 spot, r5 on-demand, r5 spot, c5 on-demand, c5 spot


@pytest.mark.parametrize(
    ("pod", "per", "expected"),
    [
        (PLAIN, "node", [8, 10, 3, 9, 0, 7]),  # cheapest 10, most expensive 0
        (BATCH, "node", [4, 10, 1, 9, 0, 9]),  # every spot node above every on-demand one
        (CRITICAL, "node", [10, 2, 6, 1, 4, 0]),  # every spot node below every on-demand one
        (PLAIN, "cpu", [3, 10, 0, 9, 4, 10]),  # per core: c5 spot cheapest, r5 on-demand dearest
        # The offset is sized for the dearest type at the 1-core floor (0.68/core), far above
        # these per-core prices (0.015..0.064): within a tier they round together.
        (BATCH, "cpu", [0, 10, 0, 10, 0, 10]),
    ],
)
def test_engine_scores_real_instance_types(pod: PodView, per: str, expected: list[int]) -> None:
    policy = Policy(priorities=(ConfiguredRule("node-cost", make(per=per, podClasses=CLASSES), weight=1.0),))
    assert Engine(policy).prioritize(pod, REAL, CTX).scores == expected


@pytest.mark.parametrize(
    ("prices", "prefer", "avoid"),
    [
        ({"a": {"spot": 1, "on-demand": 0}, "b": {"spot": 0, "on-demand": 1}}, ["spot"], []),
        ({"a": {"spot": 1, "on-demand": 0}, "b": {"spot": 0, "on-demand": 1}}, [], ["on-demand"]),
        (
            {"a": {"spot": 1, "on-demand": 0, "reserved": 1}, "b": {"spot": 0, "on-demand": 1, "reserved": 0}},
            ["spot"],
            ["reserved"],
        ),
    ],
)
def test_worst_case_prices_keep_tiers_exactly_min_gap_apart(
    prices: dict[str, dict[str, float]], prefer: list[str], avoid: list[str]
) -> None:
    # Each tier holds both the cheapest and the dearest price: the widest span, and the
    # dearest node of a tier next to the cheapest of the tier below.
    classes = [{"name": "all", "podSelector": {}, "prefer": prefer, "avoid": avoid}]
    rule = make(prices=prices, podClasses=classes)
    nodes = [node(t, c, f"{t}-{c}") for t, row in prices.items() for c in row]
    tiers = [rule.spec.pod_classes[0].tier(n.labels[CTYPE]) for n in nodes]
    scored = engine_scores(rule, nodes)
    for upper in set(tiers) - {min(tiers)}:
        worst_upper = min(norm for (norm, _), tier in zip(scored, tiers) if tier == upper)
        best_lower = max(norm for (norm, _), tier in zip(scored, tiers) if tier == upper - 1)
        assert worst_upper - best_lower >= 1
        assert worst_upper - best_lower == pytest.approx(MIN_GAP)  # and no wider: the offset is minimal


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(f"priorities: [{{type: node-cost, params: {params}}}]")
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{}", ["prices: required"]),
        ("{prices: {}}", ["prices: list at least one instance type"]),
        ("{prices: [m5.xlarge]}", ["prices: must be a mapping of instance type to {capacity type: price}"]),
        (
            "{prices: {m5.xlarge: {on-demand: -0.1, spot: cheap}, r5.2xlarge: {}, c5.4xlarge: 0.68}}",
            [
                "prices.c5.4xlarge: must be a non-empty mapping of capacity type to price",
                "prices.m5.xlarge.on-demand: must be a non-negative number",
                "prices.m5.xlarge.spot: must be a non-negative number",
                "prices.r5.2xlarge: must be a non-empty mapping of capacity type to price",
            ],
        ),
        (
            "{prices: {a: {spot: 1}}, unknownPrice: -1, per: gpu, instanceTypeLabel: ''}",
            [
                "instanceTypeLabel: must not be empty",
                "per: must be one of node, cpu, memory",
                "unknownPrice: must be a non-negative number",
            ],
        ),
        (
            "{prices: {a: {spot: 1}}, podClasses: ["
            "{name: x, prefer: [spot]}, "
            "{name: x, namespaces: [a], prefer: [spot, on-demand], avoid: [on-demand, spot]}, "
            "{namespaces: [], podSelector: {}}]}",
            [
                "podClasses[0]: give at least one of podSelector, namespaces, priorityClassNames",
                "podClasses[1].avoid: on-demand, spot also in prefer: a capacity type cannot be both",
                "podClasses[1].name: duplicate pod class name 'x'",
                "podClasses[2].name: required",
                "podClasses[2].namespaces: must not be empty",
            ],
        ),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"priorities[0].params.{line}" for line in expected]


CAPACITY_TYPES = ("on-demand", "spot", "reserved")
# Repeated round prices put the same price in several tiers: the widest normalisation span.
PRICE = st.sampled_from([0.0, 0.1, 1.0]) | st.integers(0, 5000).map(lambda millis: millis / 1000)
CPUS = {"0": Fraction(0), "250m": Fraction(1, 4), "1": Fraction(1), "3920m": Fraction(98, 25), "96": Fraction(96)}
MEMORY = {"512Mi": Fraction(1, 2), "1Gi": Fraction(1), "16Gi": Fraction(16), "384Gi": Fraction(384)}
Scenario = tuple[dict[str, Any], list[tuple[NodeView, Fraction | None]]]


def exact_unit_price(params: dict[str, Any], itype: str, ctype: str, cpu: str, memory: str) -> Fraction | None:
    """The documented unit price, computed independently with exact fractions."""
    price = params["prices"].get(itype, {}).get(ctype, params["unknownPrice"])
    if price is None or params["per"] == "node":
        return None if price is None else Fraction(price)
    amount = CPUS[cpu] if params["per"] == "cpu" else MEMORY[memory]
    if amount == 0:
        return None if params["unknownPrice"] is None else Fraction(params["unknownPrice"])
    return Fraction(price) / max(amount, Fraction(1))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Params with one catch-all pod class, and nodes with their exact unit prices."""
    types = draw(st.lists(st.sampled_from([*PRICES, "t3.micro"]), min_size=1, unique=True))
    prefer = draw(st.sets(st.sampled_from(CAPACITY_TYPES)))
    avoid = draw(st.sets(st.sampled_from(CAPACITY_TYPES))) - prefer
    params: dict[str, Any] = {
        "prices": {t: draw(st.dictionaries(st.sampled_from(CAPACITY_TYPES), PRICE, min_size=1)) for t in types},
        "unknownPrice": draw(st.none() | PRICE),
        "per": draw(st.sampled_from(("node", "cpu", "memory"))),
        "podClasses": [{"name": "c", "podSelector": {}, "prefer": sorted(prefer), "avoid": sorted(avoid)}],
    }
    # A node for every table entry, so the extreme prices (the worst case for tier
    # separation) are always there, plus some drawn at random (unknown types included).
    labels = [(t, c) for t, row in params["prices"].items() for c in row]
    extra = st.tuples(st.sampled_from([*types, "other"]), st.sampled_from(CAPACITY_TYPES))
    labels += draw(st.lists(extra, max_size=4))
    cases = []
    for i, (itype, ctype) in enumerate(labels):
        cpu, memory = draw(st.sampled_from(list(CPUS))), draw(st.sampled_from(list(MEMORY)))
        n = node(itype, ctype, f"n{i}", cpu=cpu, memory=memory)
        cases.append((n, exact_unit_price(params, itype, ctype, cpu, memory)))
    return params, cases


def engine_scores(rule: NodeCostPriority, nodes: list[NodeView]) -> list[tuple[float, int]]:
    """Normalised (0..10 float) and final integer score of each node, the rule scoring alone."""
    decision = Engine(Policy(priorities=(ConfiguredRule("cost", rule),))).prioritize(PLAIN, nodes, CTX, explain=True)
    return list(zip(decision.breakdown["cost"], decision.scores))


@given(scenarios())
def test_tiers_strictly_separate_and_cheaper_wins_within_a_tier(scenario: Scenario) -> None:
    params, cases = scenario
    rule = NodeCostPriority(NodeCostPriority.params_schema().load(params))
    (pod_class,) = rule.spec.pod_classes
    rows = []
    for (n, unit), (normalised, score) in zip(cases, engine_scores(rule, [n for n, _ in cases])):
        raw = rule.score(PLAIN, n, CTX)
        assert (raw is None) == (unit is None)
        if raw is not None and unit is not None:
            rows.append((pod_class.tier(n.labels[CTYPE]), unit, raw, normalised, score))
    gaps = [a[3] - b[3] for a in rows for b in rows if a[0] > b[0]]
    if gaps:
        target(-min(gaps))  # steer towards the worst case
    for tier_a, unit_a, raw_a, norm_a, score_a in rows:
        for tier_b, unit_b, raw_b, norm_b, score_b in rows:
            if tier_a > tier_b:  # at least a point apart, whatever the prices
                assert raw_a > raw_b and norm_a - norm_b >= 1 and score_a >= score_b + 1
            elif tier_a == tier_b and unit_a < unit_b:
                assert raw_a > raw_b and score_a >= score_b


@given(scenarios())
def test_without_a_class_the_cheapest_scores_10_and_the_dearest_0(scenario: Scenario) -> None:
    params, cases = scenario
    rule = NodeCostPriority(NodeCostPriority.params_schema().load({**params, "podClasses": []}))
    scores = [score for _, score in engine_scores(rule, [n for n, _ in cases])]
    priced = [(unit, score) for (_, unit), score in zip(cases, scores) if unit is not None]
    if not priced:
        assert set(scores) == {0}
        return
    cheapest, dearest = min(u for u, _ in priced), max(u for u, _ in priced)
    for unit_a, score_a in priced:
        if unit_a == cheapest:
            assert score_a == 10
        elif unit_a == dearest:
            assert score_a == 0
        assert all(score_a >= score_b for unit_b, score_b in priced if unit_a < unit_b)
