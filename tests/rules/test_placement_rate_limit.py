"""Predicate placement-rate-limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from extender.engine import Engine
from extender.measured import NO_LOAD, StaticLoad
from extender.policy import PolicyError, load_policy_text
from extender.rules.placement_rate_limit import PlacementRateLimitPredicate, format_window
from extender.sdk import Context, NodeView, PodView, Rejection

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
T = NOW.timestamp()
POD = PodView("web-1", "default")
NODE = NodeView("n1")
#: five pods at 11:59:10, :30, :40, :50 and :59
BOUND = tuple(("n1", T - s, {"cpu": 0.1}) for s in (50, 30, 20, 10, 1))


def make(**params: Any) -> PlacementRateLimitPredicate:
    schema = PlacementRateLimitPredicate.params_schema()
    return PlacementRateLimitPredicate(schema.load({"maxPods": 5, "window": "1m", **params}))


def at(seconds_after_noon: float, placements: tuple[tuple[str, float, Mapping[str, float]], ...] = BOUND) -> Context:
    return Context(now=NOW + timedelta(seconds=seconds_after_noon), load=StaticLoad(placements=placements))


def test_a_node_with_max_pods_in_the_window_is_rejected_until_one_ages_out() -> None:
    rule = make()
    full = Rejection("node(s) received 5 or more pods in the last 1m")
    assert rule.filter(POD, NODE, at(0)) == full
    assert rule.filter(POD, NODE, at(5)) == full  # window 11:59:05..12:00:05 holds all five
    assert rule.filter(POD, NODE, at(10)) == full  # 11:59:10 is still in (at or after)
    assert rule.filter(POD, NODE, at(11)) is None  # four left
    rejection = rule.filter(POD, NODE, at(0))
    assert rejection is not None and rejection.resolvable is False
    assert make(maxPods=6).filter(POD, NODE, at(0)) is None
    assert make(window="30s").filter(POD, NODE, at(0)) is None  # 3 pods in the last 30s


def test_only_the_nodes_own_placements_count() -> None:
    assert make().filter(POD, NodeView("n2"), at(0)) is None


def test_without_a_pod_cache_or_binds_every_node_passes() -> None:
    assert make(maxPods=1).filter(POD, NODE, Context(now=NOW, load=NO_LOAD)) is None
    assert make(maxPods=1).filter(POD, NODE, Context(now=NOW)) is None


CLASSES = [
    {"name": "critical", "priorityClassNames": ["system-node-critical"], "exempt": True},
    {"name": "batch", "namespaces": ["batch"], "maxPods": 6},
    {"name": "strict", "podSelector": {"matchLabels": {"tier": "db"}}, "maxPods": 2},
]


def test_pod_classes_exempt_or_set_their_own_limit() -> None:
    rule = make(podClasses=CLASSES)
    critical = PodView("agent", "kube-system", priority_class_name="system-node-critical")
    assert rule.applies_to(critical, at(0)) is False and rule.filter(critical, NODE, at(0)) is None
    assert rule.filter(PodView("job", "batch"), NODE, at(0)) is None  # 5 < 6
    db = PodView("db-0", "default", labels={"tier": "db"})
    # 3 pods since 11:59:50
    assert rule.filter(db, NODE, at(50)) == Rejection("node(s) received 2 or more pods in the last 1m")
    assert rule.filter(POD, NODE, at(0)) == Rejection("node(s) received 5 or more pods in the last 1m")


def test_no_metrics_no_cache_key() -> None:
    rule = make()
    assert rule.metrics() == ()
    assert rule.cache_key(POD, at(0)) is None
    assert rule.on_stale == "allow"


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (timedelta(minutes=1), "1m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=2), "2h"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(minutes=150), "150m"),
    ],
)
def test_windows_read_as_written(window: timedelta, text: str) -> None:
    assert format_window(window) == text


def test_through_the_policy_and_engine() -> None:
    policy = load_policy_text("predicates: [{type: placement-rate-limit, params: {maxPods: 2, window: 30s}}]")
    assert policy.sources == {} and policy.metrics == frozenset()
    nodes = [NodeView("a"), NodeView("b"), NodeView("c")]
    none: Mapping[str, float] = {}
    placements = (("a", T - 5, none), ("a", T - 10, none), ("b", T - 5, none), ("b", T - 40, none), ("c", T - 31, none))
    decision = Engine(policy).filter(POD, nodes, Context(now=NOW, load=StaticLoad(placements=placements)))
    assert decision.passed == [1, 2]
    assert decision.unresolvable == {"a": "node(s) received 2 or more pods in the last 30s"}


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(f"predicates: [{{type: placement-rate-limit, params: {params}}}]")
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{}", ["maxPods: required", "window: required"]),
        ("{maxPods: 0, window: 0s}", ["maxPods: must be at least 1", "window: must be greater than 0"]),
        (
            "{maxPods: 2.5, window: soon}",
            ["maxPods: must be an integer", "window: not a duration: 'soon' (use e.g. 90s, 30m, 1h30m, 2d)"],
        ),
        (
            "{maxPods: 1, window: 1m, podClasses: [{name: a, namespaces: [x]}, "
            "{name: a, namespaces: [y], maxPods: 2, exempt: true}, {name: b, exempt: true}]}",
            [
                "podClasses[0]: give either maxPods or exempt: true",
                "podClasses[1]: give either maxPods or exempt: true",
                "podClasses[1].name: duplicate pod class name 'a'",
                "podClasses[2]: give at least one of podSelector, namespaces, priorityClassNames",
            ],
        ),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"predicates[0].params.{line}" for line in expected]
