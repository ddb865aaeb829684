"""Predicate ``placement-rate-limit``: a start-up-storm guard.

A node that already received ``maxPods`` pods in the last ``window`` is rejected, so at
most ``maxPods`` pods start on a node per window (give or take pods that several
scheduling cycles place at once, before either bind is seen). Use it where many pods
starting together on one node hurt: image pulls, JVM warm-up, a cold cache.

    - type: placement-rate-limit
      params:
        maxPods: 5             # required, >= 1
        window: 1m             # required, > 0
        podClasses:            # optional, first match wins
        - name: critical
          priorityClassNames: [system-node-critical, system-cluster-critical]
          exempt: true         # the rule ignores these pods
        - name: batch
          namespaces: [batch]
          maxPods: 20          # this class's own limit

The count is ``ctx.load.placed_since(node, now - window).count``: every pod bound to the
node at or after ``now - window`` (whatever its class; each pod once), from the pod cache
(pods' binding times) and from the extender's own binds. The rule reads no metrics
(``metrics()`` is empty) and has nothing to go stale.

**It only sees placements it is told about.** Without a pod cache and without
``bind.enabled``, ``placed_since`` knows of no pod at all, every count is 0, and the rule
passes every node. With bind only, it sees just the pods this extender bound (replicas
share them only through the pod cache).

Arithmetic: reject if ``count >= maxPods``. With ``maxPods: 5, window: 1m``, a node that
received pods at 11:59:10, 11:59:30, 11:59:40, 11:59:50 and 11:59:59 is rejected at 12:00:05
(5 in 11:59:05..12:00:05) and accepted again at 12:00:11 (4).

Pod classes: ``name`` (required, unique), at least one of ``podSelector``, ``namespaces``,
``priorityClassNames`` (ANDed), and exactly one of ``exempt: true`` (the rule does not apply
to the pods) or ``maxPods`` (the class's own limit). The count includes every pod bound to
the node, whatever its class. DaemonSet pods are left out by the policy's default scope
(``excludeOwnerKinds: [DaemonSet]``) before any rule runs; a class for them is only needed
if the scope includes them.

Reason (one per limit, so kube-scheduler aggregates it): ``node(s) received 5 or more pods
in the last 1m``; not resolvable by preemption (evicting pods does not undo their start-up).
Verdicts change with time alone, so the rule returns no cache key (never memoised).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.sdk.load import PodMatcher, PodMatcherSchema
from extender.sdk.params import Duration, duplicate_names
from extender.sdk.registry import predicate
from extender.sdk.rules import Context, Predicate, Rejection
from extender.view import NodeView, PodView

_NOT_EMPTY = validate.Length(min=1, error="must not be empty")


def _max_pods(**kwargs: Any) -> fields.Integer:
    at_least_one = validate.Range(min=1, error="must be at least 1")
    return fields.Integer(data_key="maxPods", strict=True, validate=at_least_one, **kwargs)


def _positive(value: timedelta) -> bool:
    if value <= timedelta(0):
        raise ValidationError("must be greater than 0")
    return True


def format_window(window: timedelta) -> str:
    """``1m``, ``90s``, ``1h``: the window as operators wrote it, near enough."""
    seconds = window.total_seconds()
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class RateClass:
    """Pods a class covers and their limit (None: exempt)."""

    name: str
    matcher: PodMatcher
    max_pods: int | None


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """Validated params of :class:`PlacementRateLimitPredicate`."""

    max_pods: int
    window: timedelta
    pod_classes: tuple[RateClass, ...] = ()


class RateClassSchema(PodMatcherSchema):
    name = fields.String(required=True, validate=_NOT_EMPTY)
    max_pods = _max_pods()
    exempt = fields.Boolean()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _limit_or_exempt(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return
        if ("maxPods" in original) == (original.get("exempt") is True):
            raise ValidationError("give either maxPods or exempt: true")


class RateLimitParams(Schema):
    max_pods = _max_pods(required=True)
    window = Duration(required=True, validate=_positive)
    pod_classes = fields.List(fields.Nested(RateClassSchema), data_key="podClasses", load_default=list)

    @validates_schema(skip_on_field_errors=False)
    def _unique_classes(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors = duplicate_names(data.get("pod_classes"), "pod class")
        if errors:
            raise ValidationError({"podClasses": errors})

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> RateLimitSpec:
        classes = tuple(
            RateClass(c["name"], c["matcher"], None if c.get("exempt") else c["max_pods"]) for c in data["pod_classes"]
        )
        return RateLimitSpec(max_pods=data["max_pods"], window=data["window"], pod_classes=classes)


@predicate("placement-rate-limit")
class PlacementRateLimitPredicate(Predicate):
    """Reject nodes that received ``maxPods`` or more pods in the last ``window``."""

    params_schema = RateLimitParams

    def __init__(self, params: RateLimitSpec) -> None:
        super().__init__(params)
        self.spec = params
        #: no metrics, nothing goes stale; set for the refresher's stale log like every load rule
        self.on_stale = "allow"
        self._window = params.window.total_seconds()
        self._span = format_window(params.window)

    def limit_for(self, pod: PodView) -> int | None:
        """The pod's class's limit (None: exempt), else ``maxPods``."""
        for pod_class in self.spec.pod_classes:
            if pod_class.matcher.matches(pod):
                return pod_class.max_pods
        return self.spec.max_pods

    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        return self.limit_for(pod) is not None

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        limit = self.limit_for(pod)
        if limit is None:
            return None
        placed = ctx.load.placed_since(node.name, ctx.now.timestamp() - self._window)
        if placed.count >= limit:
            return Rejection(f"node(s) received {limit} or more pods in the last {self._span}")
        return None
