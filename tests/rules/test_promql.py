"""Predicate and priority promql (Intel TAS-style policies)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from extender.engine import Engine
from extender.measured import MetricRef, Sample, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.promql import PromqlPredicate, PromqlPriority
from extender.sdk import NEUTRAL, Context, NodeView, PodView, Rejection

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
CPU_Q, MEM_Q, DISK_Q = "cpu_usage_avg_5m", "mem_usage_avg_5m", "disk_busy"
CPU, MEM, DISK = (MetricRef("prometheus", q) for q in (CPU_Q, MEM_Q, DISK_Q))
NODE = NodeView("n1")
HOT = PodView("p", "default", labels={"telemetry-policy": "hot"})
PLAIN = PodView("p", "default")


def leaf(query: str, op: str, threshold: Any, **more: Any) -> dict[str, Any]:
    return {"query": query, "op": op, "threshold": threshold, **more}


def predicate(condition: dict[str, Any], **params: Any) -> PromqlPredicate:
    policies = params.pop("policies", [{"name": "hot", "dontschedule": condition}])
    return PromqlPredicate(PromqlPredicate.params_schema().load({"policies": policies, **params}))


def ctx(**values: float | None) -> Context:
    """Samples of n1 by query name (cpu, mem, disk); None or absent: no sample."""
    refs = {"cpu": CPU, "mem": MEM, "disk": DISK}
    samples = {refs[name]: {"n1": Sample(value, T - 5)} for name, value in values.items() if value is not None}
    return Context(now=NOW, load=StaticLoad(samples))


def reason(text: str) -> Rejection:
    return Rejection(f"node(s) violated promql policy hot: {text}")


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [
        ("GreaterThan", 81, True),
        ("GreaterThan", 80, False),
        ("LessThan", 79, True),
        ("LessThan", 80, False),
        ("Equals", 80, True),
        ("Equals", 80.5, False),
        (">", 80, False),
        (">=", 80, True),
        ("<", 80, False),
        ("<=", 80, True),
        ("==", 80, True),
        ("!=", 80, False),
        ("!=", 79, True),
    ],
)
def test_a_leaf_rejects_the_node_when_it_holds(op: str, value: float, holds: bool) -> None:
    symbol = {"GreaterThan": ">", "LessThan": "<", "Equals": "=="}.get(op, op)
    verdict = predicate(leaf(CPU_Q, op, 80)).filter(HOT, NODE, ctx(cpu=value))
    assert verdict == (reason(f"{CPU_Q} {symbol} 80") if holds else None)


def test_thresholds_print_compactly_and_long_queries_are_cut() -> None:
    assert predicate(leaf(CPU_Q, ">", 0.5)).filter(HOT, NODE, ctx(cpu=1)) == reason(f"{CPU_Q} > 0.5")
    assert predicate(leaf(CPU_Q, ">", "1e-3")).filter(HOT, NODE, ctx(cpu=1)) == reason(f"{CPU_Q} > 0.001")
    query = 'avg by (node) (rate(node_cpu_seconds_total{mode!="idle"}[5m])) * 100'
    rule = predicate(leaf(query, ">", 80))
    load = StaticLoad({MetricRef("prometheus", query): {"n1": Sample(90, T)}})
    cut = 'avg by (node) (rate(node_cpu_seconds_total{mode!="idle"}[...'
    assert len(cut) == 60
    assert rule.filter(HOT, NODE, Context(NOW, load)) == reason(f"{cut} > 80")


ANY = {"anyOf": [leaf(CPU_Q, ">", 80), leaf(MEM_Q, ">", 90)]}
ALL = {"allOf": [leaf(CPU_Q, ">", 80), leaf(MEM_Q, ">", 90)]}


def test_any_of_rejects_on_the_first_leaf_that_holds() -> None:
    rule = predicate(ANY)
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=95)) == reason(f"{CPU_Q} > 80")
    assert rule.filter(HOT, NODE, ctx(cpu=50, mem=95)) == reason(f"{MEM_Q} > 90")
    assert rule.filter(HOT, NODE, ctx(cpu=50, mem=50)) is None


def test_all_of_rejects_only_when_every_leaf_holds() -> None:
    rule = predicate(ALL)
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=95)) == reason(f"{CPU_Q} > 80")
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=50)) is None
    assert rule.filter(HOT, NODE, ctx(cpu=50, mem=95)) is None


def test_conditions_nest() -> None:
    rule = predicate({"anyOf": [ALL, leaf(DISK_Q, "GreaterThan", 0)]})
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=95, disk=0)) == reason(f"{CPU_Q} > 80")
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=50, disk=1)) == reason(f"{DISK_Q} > 0")
    assert rule.filter(HOT, NODE, ctx(cpu=85, mem=50, disk=0)) is None


def test_a_stale_leaf_votes_by_on_stale_allow_does_not_hold() -> None:
    # default onStale allow: a stale leaf is no reason to reject
    assert predicate(ANY).filter(HOT, NODE, ctx(mem=95)) == reason(f"{MEM_Q} > 90")  # the other leaf decides
    assert predicate(ANY).filter(HOT, NODE, ctx(mem=50)) is None
    assert predicate(ALL).filter(HOT, NODE, ctx(mem=95)) is None  # one allow leaf lets allOf pass
    assert predicate(leaf(CPU_Q, ">", 80)).filter(HOT, NODE, ctx(cpu=float("nan"))) is None


def test_a_stale_leaf_votes_by_on_stale_deny_holds() -> None:
    stale_deny = leaf(CPU_Q, ">", 80, onStale="deny")
    any_of = predicate({"anyOf": [stale_deny, leaf(MEM_Q, ">", 90)]})
    assert any_of.filter(HOT, NODE, ctx(mem=50)) == reason(f"{CPU_Q} stale")  # one deny leaf rejects
    all_of = predicate({"allOf": [stale_deny, leaf(MEM_Q, ">", 90)]})
    assert all_of.filter(HOT, NODE, ctx(mem=95)) == reason(f"{CPU_Q} stale")  # ... and defers to the others
    assert all_of.filter(HOT, NODE, ctx(mem=50)) is None
    # the rule's onStale is every leaf's default; a leaf's own wins
    assert predicate(ALL, onStale="deny").filter(HOT, NODE, ctx(mem=95)) == reason(f"{CPU_Q} stale")
    own_allow = {"allOf": [leaf(CPU_Q, ">", 80, onStale="allow"), leaf(MEM_Q, ">", 90)]}
    assert predicate(own_allow, onStale="deny").filter(HOT, NODE, ctx(mem=95)) is None


def test_old_samples_are_stale_by_max_age() -> None:
    old = Context(NOW, StaticLoad({CPU: {"n1": Sample(90, T - 60)}}))
    assert predicate(leaf(CPU_Q, ">", 80)).filter(HOT, NODE, old) == reason(f"{CPU_Q} > 80")  # source: 120s
    assert predicate(leaf(CPU_Q, ">", 80), maxAge="30s").filter(HOT, NODE, old) is None


SELECTED = [
    {"name": "web", "podSelector": {"matchLabels": {"app": "web"}}, "dontschedule": leaf(CPU_Q, ">", 50)},
    {"name": "hot", "dontschedule": leaf(CPU_Q, ">", 80)},
    {"name": "batch", "namespaces": ["batch"], "dontschedule": leaf(CPU_Q, ">", 95)},
]


def test_pods_pick_a_policy_by_label_then_by_matchers() -> None:
    rule = predicate({}, policies=SELECTED)
    context = ctx(cpu=90)
    web = PodView("w", "default", labels={"app": "web"})
    assert rule.filter(web, NODE, context) == Rejection(f"node(s) violated promql policy web: {CPU_Q} > 50")
    assert rule.filter(HOT, NODE, context) == reason(f"{CPU_Q} > 80")
    labelled_web = PodView("w", "default", labels={"app": "web", "telemetry-policy": "batch"})
    assert rule.filter(labelled_web, NODE, context) is None  # the label wins: batch, 90 > 95 does not hold
    unknown = PodView("w", "default", labels={"app": "web", "telemetry-policy": "nope"})
    assert rule.filter(unknown, NODE, context) == Rejection(f"node(s) violated promql policy web: {CPU_Q} > 50")
    assert rule.applies_to(PodView("j", "batch"), context)
    assert not rule.applies_to(PLAIN, context)  # label-only policies need the label
    assert not rule.applies_to(PodView("x", "default", labels={"telemetry-policy": "nope"}), context)
    assert rule.filter(PLAIN, NODE, context) is None


def test_the_policy_label_is_configurable_or_off() -> None:
    rule = predicate({}, policies=SELECTED, policyLabel="example.com/policy")
    custom = PodView("p", "default", labels={"example.com/policy": "hot"})
    assert rule.applies_to(custom, ctx()) and not rule.applies_to(HOT, ctx())
    matchers_only = [p for p in SELECTED if p["name"] != "hot"]
    off = predicate({}, policies=matchers_only, policyLabel=None)
    assert not off.applies_to(PodView("p", "default", labels={"telemetry-policy": "batch"}), ctx())
    assert off.applies_to(PodView("j", "batch"), ctx())


def test_metrics_are_every_query_once() -> None:
    rule = predicate({}, policies=[*SELECTED, {"name": "x", "dontschedule": {"anyOf": [ANY, ALL]}}])
    assert rule.metrics() == (CPU, MEM)
    assert predicate(leaf(CPU_Q, ">", 1), source="vm").metrics() == (MetricRef("vm", CPU_Q),)


def priority(op: str, **params: Any) -> PromqlPriority:
    policies = [{"name": "hot", "scheduleonmetric": {"query": CPU_Q, "op": op}}]
    return PromqlPriority(PromqlPriority.params_schema().load({"policies": policies, **params}))


def test_priority_scores_by_the_value_in_the_policys_direction() -> None:
    assert priority("LessThan").score(HOT, NODE, ctx(cpu=30)) == -30
    assert priority("GreaterThan").score(HOT, NODE, ctx(cpu=30)) == 30
    assert priority("LessThan").score(HOT, NODE, ctx()) is NEUTRAL
    assert priority("LessThan", onStale="deny").score(HOT, NODE, ctx(cpu=float("inf"))) is None
    assert not priority("LessThan").applies_to(PLAIN, ctx())
    assert priority("LessThan").metrics() == (CPU,)


POLICY = f"""
sources:
  prometheus: {{type: prometheus, url: "http://prometheus:9090"}}
predicates:
- type: promql
  params:
    policies:
    - name: hot
      dontschedule:
        anyOf:
        - {{query: {CPU_Q}, op: GreaterThan, threshold: 80}}
        - {{query: {MEM_Q}, op: '>=', threshold: 90}}
priorities:
- type: promql
  name: promql-score
  params:
    policies:
    - name: hot
      scheduleonmetric: {{query: {CPU_Q}, op: LessThan}}
"""


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text(POLICY)
    assert policy.sources["prometheus"].keys == frozenset({CPU_Q, MEM_Q})
    nodes = [NodeView(name) for name in ("a", "b", "c", "d")]
    load = StaticLoad({CPU: {"a": Sample(20, T), "b": Sample(85, T), "c": Sample(60, T)}, MEM: {"c": Sample(90, T)}})
    context = Context(NOW, load)
    engine = Engine(policy)
    decision = engine.filter(HOT, nodes, context)
    assert list(decision.passed) == [0, 3]  # d: stale, allowed
    assert decision.unresolvable == {
        "b": f"node(s) violated promql policy hot: {CPU_Q} > 80",
        "c": f"node(s) violated promql policy hot: {MEM_Q} >= 90",
    }
    # LessThan: a 20 best, b 85 worst, c 60, d stale (neutral)
    assert engine.prioritize(HOT, nodes, context).scores == [10, 0, 4, 5]
    assert list(engine.filter(PLAIN, nodes, context).passed) == [0, 1, 2, 3]  # no policy: untouched


def problems(kind: str, params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"{kind}: [{{type: promql, params: {params}}}]"
        )
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{}", ["policies: required"]),
        ("{policies: []}", ["policies: list at least one policy"]),
        (
            "{policies: [{name: a, dontschedule: {query: q, op: about, threshold: x}}, {dontschedule: 5}]}",
            [
                "policies[0].dontschedule.op: must be one of GreaterThan, LessThan, Equals, >, >=, <, <=, ==, !=",
                "policies[0].dontschedule.threshold: must be a finite number",
                "policies[1].dontschedule: must be {query, op, threshold}, {anyOf: [...]} or {allOf: [...]}",
                "policies[1].name: required",
            ],
        ),
        (
            "{policies: [{name: a, dontschedule: {anyOf: [{query: q, op: '>'}, {allOf: []}]}}]}",
            [
                "policies[0].dontschedule.anyOf[0].threshold: required",
                "policies[0].dontschedule.anyOf[1].allOf: must be a non-empty list of conditions",
            ],
        ),
        (
            "{policies: [{name: a, dontschedule: {anyOf: [{query: q, op: '>', threshold: 1}], allOf: []}}]}",
            ["policies[0].dontschedule: give one of anyOf, allOf or a {query, op, threshold} leaf, not also allOf"],
        ),
        (
            "{policies: [{name: a, dontschedule: {query: q, op: '>', threshold: .nan, onStale: neutral}}]}",
            [
                "policies[0].dontschedule.onStale: must be one of allow, deny",
                "policies[0].dontschedule.threshold: must be a finite number",
            ],
        ),
        (
            "{policies: [{name: a, dontschedule: {query: q, op: '>', threshold: 1}},"
            " {name: a, dontschedule: {query: q, op: '>', threshold: 1}}]}",
            ["policies[1].name: duplicate policy name 'a'"],
        ),
        (
            "{policyLabel: null, policies: [{name: a, dontschedule: {query: q, op: '>', threshold: 1}}]}",
            ["policies[0]: without policyLabel, give podSelector, namespaces or priorityClassNames"],
        ),
    ],
)
def test_invalid_predicate_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems("predicates", params) == [f"predicates[0].params.{line}" for line in expected]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            "{onStale: allow, policies: [{name: a, scheduleonmetric: {query: q, op: '<'}}]}",
            [
                "onStale: must be one of neutral, deny",
                "policies[0].scheduleonmetric.op: must be one of LessThan, GreaterThan",
            ],
        ),
        ("{policies: [{name: a}]}", ["policies[0].scheduleonmetric: required"]),
    ],
)
def test_invalid_priority_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems("priorities", params) == [f"priorities[0].params.{line}" for line in expected]


def test_large_thresholds_print_in_full() -> None:
    assert predicate(leaf(CPU_Q, ">", 1234567)).filter(HOT, NODE, ctx(cpu=2e6)) == reason(f"{CPU_Q} > 1234567")


def test_nesting_is_bounded() -> None:
    condition: dict[str, Any] = leaf(CPU_Q, ">", 1)
    for _ in range(17):
        condition = {"allOf": [condition]}
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "sources: {prometheus: {type: prometheus, url: 'http://p:9090'}}\n"
            f"predicates: [{{type: promql, params: {{policies: [{{name: a, dontschedule: {condition}}}]}}}}]"
        )
    [problem] = err.value.problems
    assert problem.startswith("predicates[0].params.policies[0].dontschedule" + ".allOf[0]" * 16 + ": ")
    assert problem.endswith("conditions nest at most 16 deep")
