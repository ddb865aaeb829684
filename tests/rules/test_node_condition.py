"""Predicate node-condition."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from extender.policy import PolicyError, load_policy_text
from extender.rules.node_condition import NodeConditionPredicate
from extender.sdk import Condition, Context, NodeView, PodView, Rejection

CTX = Context(now=datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))
POD = PodView("web-1", "default")


def make(conditions: list[dict[str, object]]) -> NodeConditionPredicate:
    return NodeConditionPredicate(NodeConditionPredicate.params_schema().load({"conditions": conditions}))


def node(**statuses: str) -> NodeView:
    return NodeView("n1", conditions=tuple(Condition(type=t, status=s) for t, s in statuses.items()))


DEFAULTS = make(
    [
        {"type": "Ready", "status": "True", "match": "NotEqual"},
        {"type": "KernelDeadlock", "status": "True"},
    ]
)


def test_healthy_node_passes() -> None:
    assert DEFAULTS.filter(POD, node(Ready="True", KernelDeadlock="False"), CTX) is None


def test_node_problem_detector_condition_rejects_unresolvably() -> None:
    assert DEFAULTS.filter(POD, node(Ready="True", KernelDeadlock="True"), CTX) == Rejection(
        "node(s) had condition KernelDeadlock=True", resolvable=False
    )


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_not_ready_node_is_rejected_with_its_actual_status(status: str) -> None:
    assert DEFAULTS.filter(POD, node(Ready=status), CTX) == Rejection(f"node(s) had condition Ready={status}")


def test_missing_condition_counts_as_unknown() -> None:
    # No Ready condition at all: "Ready NotEqual True" rejects; no KernelDeadlock: passes.
    assert DEFAULTS.filter(POD, node(), CTX) == Rejection("node(s) did not report condition Ready")
    assert DEFAULTS.filter(POD, node(Ready="True"), CTX) is None


def test_yaml_booleans_are_accepted_as_statuses() -> None:
    rule = make([{"type": "ReadonlyFilesystem", "status": True}])
    assert rule.filter(POD, node(ReadonlyFilesystem="True"), CTX) is not None


def test_invalid_params_report_field_paths() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True"}
    - {type: KernelDeadlock, status: maybe, match: Sometimes}
    - {status: "True"}
"""
        )
    assert err.value.problems == [
        "predicates[0].params.conditions[1].match: must be one of Equal, NotEqual",
        "predicates[0].params.conditions[1].status: must be one of True, False, Unknown",
        "predicates[0].params.conditions[2].type: required",
    ]


def test_empty_condition_list_is_rejected() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("predicates: [{type: node-condition, params: {conditions: []}}]")
    assert err.value.problems == ["predicates[0].params.conditions: list at least one condition"]
