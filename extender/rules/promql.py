"""Predicate and priority ``promql``: declarative per-pod telemetry policies (Intel TAS style).

What Intel's Telemetry Aware Scheduling did with a TASPolicy custom resource and
prometheus-adapter (intel/platform-aware-scheduling ``telemetry-aware-scheduling``:
strategies ``dontschedule`` and ``scheduleonmetric`` in ``pkg/strategies/``, operators
``LessThan``/``GreaterThan``/``Equals`` in ``pkg/strategies/core/operator.go``, pods naming
their policy with the label ``telemetry-policy: <name>``), written in the policy file and
read straight from Prometheus: every ``query`` is a key of the source (a PromQL expression
or a name under the source's ``queries:``), run as one instant query for all nodes.

    predicates:
    - type: promql
      params:
        source: prometheus          # default
        policyLabel: telemetry-policy   # default; null: select by matchers only
        onStale: allow              # default for every leaf (allow | deny), see below
        maxAge: 2m                  # optional: overrides the source's maxAge
        policies:
        - name: hot-nodes           # chosen by pods labelled telemetry-policy=hot-nodes ...
          podSelector: {matchLabels: {tier: latency}}   # ... and/or by matchers (ANDed; also
                                                        # namespaces, priorityClassNames)
          dontschedule:             # reject a node when this condition holds
            anyOf:
            - {query: cpu_usage_avg_5m, op: GreaterThan, threshold: 80}
            - allOf:
              - {query: mem_usage_avg_5m, op: '>=', threshold: 90}
              - {query: 'node_pressure_memory_waiting_seconds_total', op: '>', threshold: 0, onStale: deny}
    priorities:
    - type: promql
      params:
        onStale: neutral            # default (neutral | deny)
        policies:
        - name: hot-nodes
          scheduleonmetric: {query: cpu_usage_avg_5m, op: LessThan}   # lower is better

Selecting a policy: if the pod's ``policyLabel`` label names a policy of this rule, that
policy applies; otherwise the first policy with matchers that all match the pod. A policy
without matchers is chosen by the label only. Pods matching none are untouched (the rule
does not apply to them), as TAS ignores pods without the label.

Conditions: a leaf ``{query, op, threshold}`` holds when ``value op threshold``; ops are
TAS's ``GreaterThan``, ``LessThan``, ``Equals`` and ``>``, ``>=``, ``<``, ``<=``, ``==``,
``!=``. ``anyOf`` holds when any listed condition holds, ``allOf`` when all do; they nest (16 deep at most).
The predicate rejects the node when the policy's ``dontschedule`` condition holds, with a
reason naming the first leaf that held: ``node(s) violated promql policy hot-nodes:
cpu_usage_avg_5m > 80`` (queries longer than 60 characters are cut with ``...``).

Stale leaves: a leaf whose value is missing, not finite or older than ``maxAge`` takes its
``onStale`` (its own, else the rule's) as a *vote*: ``allow`` means the leaf does not hold
(it is no reason to reject), ``deny`` means it holds (a reason to reject, shown as
``<query> stale``). The vote then combines like any other leaf, so in ``anyOf`` one
``deny`` leaf rejects the node and an ``allow`` leaf defers to the others; in ``allOf``
one ``allow`` leaf lets the node pass and a ``deny`` leaf defers to the others.

The priority scores by one query's value: ``LessThan`` (lower is better, like TAS's
scheduleonmetric) gives raw score -value, ``GreaterThan`` gives value; the engine min-max
normalises across the nodes (TAS ranked them instead). A stale value gets ``onStale``:
neutral (the middle score) or deny (the lowest). ``allow`` (the best) is refused for the
priority: an unbounded query has no best value to give.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.measured import MetricRef
from extender.sdk.load import (
    PREDICATE_ON_STALE,
    PodMatcher,
    PodMatcherSchema,
    fresh_sample,
    max_age_field,
    on_stale_field,
    source_field,
    stale_score,
)
from extender.sdk.params import duplicate_names, one_of
from extender.sdk.registry import predicate, priority
from extender.sdk.rules import Context, Neutral, Predicate, Priority, Rejection
from extender.view import NodeView, PodView

POLICY_LABEL = "telemetry-policy"
#: operator -> (symbol shown in reasons, comparison)
OPS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThan": (">", operator.gt),
    "LessThan": ("<", operator.lt),
    "Equals": ("==", operator.eq),
    ">": (">", operator.gt),
    ">=": (">=", operator.ge),
    "<": ("<", operator.lt),
    "<=": ("<=", operator.le),
    "==": ("==", operator.eq),
    "!=": ("!=", operator.ne),
}
DIRECTIONS = ("LessThan", "GreaterThan")
PRIORITY_STALE = ("neutral", "deny")
MAX_QUERY_IN_REASON = 60
MAX_DEPTH = 16
_NOT_EMPTY = validate.Length(min=1, error="must not be empty")


@dataclass(frozen=True, slots=True)
class Leaf:
    """``{query, op, threshold}``: holds when ``value op threshold``; ``on_stale`` None: the rule's."""

    ref: MetricRef
    op: str
    threshold: float
    on_stale: str | None = None

    def describe(self, stale: bool = False) -> str:
        query = self.ref.key
        if len(query) > MAX_QUERY_IN_REASON:
            query = query[: MAX_QUERY_IN_REASON - 3] + "..."
        return f"{query} stale" if stale else f"{query} {OPS[self.op][0]} {self.threshold:.15g}"


@dataclass(frozen=True, slots=True)
class Group:
    """``anyOf`` (``every`` False) or ``allOf`` (``every`` True) of conditions."""

    every: bool
    items: tuple[Condition, ...]


Condition = Leaf | Group


def _leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    return [leaf for item in condition.items for leaf in _leaves(item)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class ConditionField(fields.Field[Any]):
    """A nested condition; loads a ``(query, op, threshold, onStale)`` tree of plain dicts,
    which the rule binds to its source (the field does not know the source)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        return _parse_condition(value, 0)


def _parse_condition(value: Any, depth: int) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError("must be {query, op, threshold}, {anyOf: [...]} or {allOf: [...]}")
    groups = [key for key in ("anyOf", "allOf") if key in value]
    if groups:
        extra = sorted(str(k) for k in value if k != groups[0])
        if extra:
            also = ", ".join(extra)
            raise ValidationError(f"give one of anyOf, allOf or a {{query, op, threshold}} leaf, not also {also}")
        if depth >= MAX_DEPTH:
            raise ValidationError(f"conditions nest at most {MAX_DEPTH} deep")
        key = groups[0]
        items = value[key]
        if not isinstance(items, list) or not items:
            raise ValidationError({key: ["must be a non-empty list of conditions"]})
        parsed, errors = [], {}
        for index, item in enumerate(items):
            try:
                parsed.append(_parse_condition(item, depth + 1))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError({key: errors})
        return {"every": key == "allOf", "items": parsed}
    return LeafSchema().load(value)  # type: ignore[no-any-return]


class LeafSchema(Schema):
    query = fields.String(required=True, validate=_NOT_EMPTY)
    op = fields.String(required=True, validate=one_of(tuple(OPS)))
    threshold = fields.Raw(required=True)
    on_stale = fields.String(data_key="onStale", load_default=None, validate=one_of(PREDICATE_ON_STALE))

    @validates_schema(skip_on_field_errors=False)
    def _threshold(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "threshold" in data and _number(data["threshold"]) is None:
            raise ValidationError({"threshold": ["must be a finite number"]})

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "threshold": _number(data["threshold"])}


def _bind(tree: dict[str, Any], source: str) -> Condition:
    if "items" in tree:
        return Group(tree["every"], tuple(_bind(item, source) for item in tree["items"]))
    return Leaf(MetricRef(source, tree["query"]), tree["op"], tree["threshold"], tree["on_stale"])


@dataclass(frozen=True, slots=True)
class PolicySelector:
    """How pods pick a policy: the label naming it, or all of its matchers (None: label only)."""

    name: str
    matcher: PodMatcher | None


class _PolicySchema(PodMatcherSchema):
    """A named policy: matchers optional (the label can pick it)."""

    name = fields.String(required=True, validate=_NOT_EMPTY)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_matcher(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        """Matchers are optional here, unlike the base schema's."""

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        has_matcher = any(key in data for key in ("pod_selector", "namespaces", "priority_class_names"))
        made: dict[str, Any] = super()._make(data, **kwargs)
        if not has_matcher:
            made["matcher"] = None
        return made


class DontSchedulePolicySchema(_PolicySchema):
    dontschedule = ConditionField(required=True)


class ScheduleOnMetricSchema(Schema):
    query = fields.String(required=True, validate=_NOT_EMPTY)
    op = fields.String(required=True, validate=one_of(DIRECTIONS))


class ScheduleOnMetricPolicySchema(_PolicySchema):
    scheduleonmetric = fields.Nested(ScheduleOnMetricSchema, required=True)


def _unique_names(policies: Any) -> None:
    errors = duplicate_names(policies, "policy")
    if errors:
        raise ValidationError({"policies": errors})


class _RuleParams(Schema):
    source = source_field()
    policy_label = fields.String(
        data_key="policyLabel", load_default=POLICY_LABEL, allow_none=True, validate=_NOT_EMPTY
    )
    max_age = max_age_field()

    @validates_schema(skip_on_field_errors=False)
    def _unique(self, data: dict[str, Any], **kwargs: Any) -> None:
        _unique_names(data.get("policies"))
        if "policy_label" in data and data["policy_label"] is None:
            errors = {
                index: {"_schema": ["without policyLabel, give podSelector, namespaces or priorityClassNames"]}
                for index, policy in enumerate(data.get("policies") or ())
                if isinstance(policy, Mapping) and policy.get("matcher", 0) is None
            }
            if errors:
                raise ValidationError({"policies": errors})


_POLICIES_ERROR = "list at least one policy"


class PromqlPredicateParams(_RuleParams):
    on_stale = on_stale_field("predicate")
    policies = fields.List(
        fields.Nested(DontSchedulePolicySchema), required=True, validate=validate.Length(min=1, error=_POLICIES_ERROR)
    )


class PromqlPriorityParams(_RuleParams):
    on_stale = fields.String(data_key="onStale", load_default="neutral", validate=one_of(PRIORITY_STALE))
    policies = fields.List(
        fields.Nested(ScheduleOnMetricPolicySchema),
        required=True,
        validate=validate.Length(min=1, error=_POLICIES_ERROR),
    )


class _PolicyRule:
    """Params and policy selection shared by the predicate and the priority."""

    def _configure(self, params: Mapping[str, Any]) -> None:
        self.on_stale: str = params["on_stale"]
        self._source: str = params["source"]
        self._label: str | None = params["policy_label"]
        self._max_age: timedelta | None = params["max_age"]
        self._selectors = tuple(PolicySelector(p["name"], p["matcher"]) for p in params["policies"])

    def _select(self, pod: PodView) -> int | None:
        """The index of the pod's policy: the one its label names, else the first whose matchers match."""
        if self._label is not None:
            named = pod.labels.get(self._label)
            for index, selector in enumerate(self._selectors):
                if selector.name == named:
                    return index
        for index, selector in enumerate(self._selectors):
            if selector.matcher is not None and selector.matcher.matches(pod):
                return index
        return None

    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        return self._select(pod) is not None


@predicate("promql")
class PromqlPredicate(_PolicyRule, Predicate):
    """Reject a node when the pod's policy's ``dontschedule`` condition holds on it."""

    params_schema = PromqlPredicateParams

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._configure(params)
        self.conditions = tuple(_bind(p["dontschedule"], self._source) for p in params["policies"])

    def metrics(self) -> Sequence[MetricRef]:
        return tuple(dict.fromkeys(leaf.ref for c in self.conditions for leaf in _leaves(c)))

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        index = self._select(pod)
        if index is None:
            return None
        held = self.holds(self.conditions[index], node, ctx)
        if held is None:
            return None
        return Rejection(f"node(s) violated promql policy {self._selectors[index].name}: {held}")

    def holds(self, condition: Condition, node: NodeView, ctx: Context) -> str | None:
        """Whether ``condition`` holds on ``node``: the description of the first leaf that
        held (what the reason names), or None when it does not hold."""
        if isinstance(condition, Leaf):
            sample = fresh_sample(ctx, condition.ref, node.name, self._max_age)
            if sample is None:
                vote = condition.on_stale or self.on_stale
                return condition.describe(stale=True) if vote == "deny" else None
            compare = OPS[condition.op][1]
            return condition.describe() if compare(sample.value, condition.threshold) else None
        first: str | None = None
        for item in condition.items:
            held = self.holds(item, node, ctx)
            if held is None and condition.every:
                return None
            if held is not None:
                if not condition.every:
                    return held
                first = first or held
        return first


@priority("promql")
class PromqlPriority(_PolicyRule, Priority):
    """Score a node by the pod's policy's ``scheduleonmetric`` query (direction by ``op``)."""

    params_schema = PromqlPriorityParams

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._configure(params)
        self.targets: tuple[tuple[MetricRef, float], ...] = tuple(
            (
                MetricRef(self._source, p["scheduleonmetric"]["query"]),
                -1.0 if p["scheduleonmetric"]["op"] == "LessThan" else 1.0,
            )
            for p in params["policies"]
        )

    def metrics(self) -> Sequence[MetricRef]:
        return tuple(dict.fromkeys(ref for ref, _ in self.targets))

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | Neutral | None:
        index = self._select(pod)
        if index is None:
            return None
        ref, sign = self.targets[index]
        sample = fresh_sample(ctx, ref, node.name, self._max_age)
        if sample is None:
            return stale_score(self.on_stale, 0.0)  # allow is refused by the schema
        return sign * sample.value
