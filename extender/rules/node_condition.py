"""Predicate ``node-condition``: reject nodes whose NodeConditions have a given status.

Catches what node-problem-detector reports (KernelDeadlock, ReadonlyFilesystem,
FrequentContainerdRestart = True) and nodes that are not Ready. A condition the node does
not report counts as ``Unknown``: ``Ready NotEqual True`` rejects a node without a Ready
condition, ``KernelDeadlock Equal True`` passes a node that runs no problem detector.

    - type: node-condition
      params:
        conditions:
        - {type: Ready, status: "True", match: NotEqual}
        - {type: KernelDeadlock, status: "True"}

Rejections are unresolvable: evicting pods does not fix a node's condition.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from extender.sdk.params import ConditionStatus, one_of
from extender.sdk.registry import predicate
from extender.sdk.rules import Context, Predicate, Rejection
from extender.view import NodeView, PodView


class ConditionCheckSchema(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))
    status = ConditionStatus(required=True)
    match = fields.String(load_default="Equal", validate=one_of(("Equal", "NotEqual")))


class NodeConditionParams(Schema):
    conditions = fields.List(
        fields.Nested(ConditionCheckSchema),
        required=True,
        validate=validate.Length(min=1, error="list at least one condition"),
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> list[tuple[str, str, bool]]:
        return [(c["type"], c["status"], c["match"] == "Equal") for c in data["conditions"]]


@predicate("node-condition")
class NodeConditionPredicate(Predicate):
    """Reject a node when any configured condition check matches."""

    params_schema = NodeConditionParams

    def __init__(self, params: list[tuple[str, str, bool]]) -> None:
        super().__init__(params)
        self.checks = params
        # Reasons are precomputed: the event aggregates identical strings.
        self._reasons = {
            (ctype, status): f"node(s) had condition {ctype}={status}"
            for ctype, _, _ in params
            for status in ("True", "False", "Unknown")
        }

    def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
        return ()  # the verdict depends on the node alone

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        for ctype, status, equal in self.checks:
            condition = node.condition(ctype)
            actual = condition.status if condition is not None else "Unknown"
            if (actual == status) == equal:
                if condition is None:
                    return Rejection(f"node(s) did not report condition {ctype}")
                return Rejection(self._reasons.get((ctype, actual)) or f"node(s) had condition {ctype}={actual}")
        return None
