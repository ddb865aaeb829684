"""Building blocks shared by the load-aware rules: staleness, pod matchers, in-flight usage.

Every load rule reads samples through ``ctx.load`` and takes the same few params:

    source: prometheus      # a name under the policy's sources: (default: prometheus)
    onStale: allow          # predicates: allow | deny; priorities: neutral | allow | deny
    maxAge: 2m              # optional: overrides the source's maxAge for this rule

"Stale" means the node has no sample of a metric the rule needs, the value is not a
finite number, or it is older than ``maxAge``. The refresher logs stale and missing nodes
once per refresh (naming the rules that read the metric); rules apply their ``onStale``
silently, per node, on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.selectors import LabelSelector
from extender.measured import InFlight, MetricRef, OnStale, Sample, fresh
from extender.sdk.params import Duration, LabelSelectorSchema, one_of
from extender.sdk.rules import NEUTRAL, Context, Neutral
from extender.view import NodeView, PodView

DEFAULT_SOURCE = "prometheus"
PREDICATE_ON_STALE: tuple[OnStale, ...] = ("allow", "deny")
PRIORITY_ON_STALE: tuple[OnStale, ...] = ("neutral", "allow", "deny")
_NOT_EMPTY = validate.Length(min=1, error="must not be empty")



def source_field() -> fields.String:
    """``source``: the name of a source in the policy's ``sources:``."""
    return fields.String(load_default=DEFAULT_SOURCE, validate=_NOT_EMPTY)


def on_stale_field(kind: str) -> fields.String:
    """``onStale`` for a predicate (default allow) or a priority (default neutral)."""
    if kind == "predicate":
        return fields.String(data_key="onStale", load_default="allow", validate=one_of(PREDICATE_ON_STALE))
    return fields.String(data_key="onStale", load_default="neutral", validate=one_of(PRIORITY_ON_STALE))


def max_age_field() -> Duration:
    """``maxAge``: this rule's own staleness bound (None: the source's)."""
    return Duration(data_key="maxAge", load_default=None, validate=lambda d: d > timedelta(0) or _positive())


def _positive() -> bool:
    raise ValidationError("must be greater than 0")


def fresh_sample(ctx: Context, ref: MetricRef, node: str, max_age: timedelta | None = None) -> Sample | None:
    """The node's sample of ``ref`` if it is fresh (by ``max_age``, else the source's), else None."""
    sample = ctx.load.sample(ref, node)
    limit = max_age.total_seconds() if max_age is not None else ctx.load.max_age(ref)
    return sample if fresh(sample, ctx.now.timestamp(), limit) else None


def inflight_since(ctx: Context, node: str, sample: Sample, lag: timedelta = timedelta(0)) -> InFlight:
    """Pods bound to ``node`` since ``sample`` was measured (minus ``lag``: a metric averaged
    over a window keeps missing a pod's usage for about that long)."""
    return ctx.load.placed_since(node, sample.timestamp - lag.total_seconds())


def allocatable_amount(node: NodeView, resource: str) -> float:
    """The node's allocatable ``resource`` in base units; 0 when it reports none, or a
    quantity that does not parse (load rules treat such a node as having no capacity share
    to add, rather than failing the node)."""
    try:
        amount = float(node.allocatable.get(resource, 0))
    except ValueError:  # QuantityError: a malformed quantity in status.allocatable
        return 0.0
    return amount if amount > 0 else 0.0  # also NaN


def inflight_percent(node: NodeView, inflight: InFlight, resource: str, factor: float = 1.0) -> float:
    """In-flight requests of ``resource`` as a percentage of the node's allocatable, times
    ``factor`` (0 when the node reports no allocatable of it)."""
    allocatable = allocatable_amount(node, resource)
    if allocatable == 0:
        return 0.0
    return 100.0 * factor * inflight.request(resource) / allocatable


def pod_request_percent(pod: PodView, node: NodeView, resource: str) -> float:
    """The pod's own effective request of ``resource`` as a percentage of the node's allocatable."""
    allocatable = allocatable_amount(node, resource)
    if allocatable == 0:
        return 0.0
    return 100.0 * float(pod.requests.get(resource, 0)) / allocatable


def with_inflight(
    ctx: Context, node: NodeView, sample: Sample, resource: str | None, spec: InflightSpec | None
) -> float:
    """``sample``'s value plus the requests of pods placed on ``node`` since it was measured,
    as a percentage of allocatable ``resource`` (just the value when ``spec`` or ``resource``
    is None, or the factor is 0: no placement lookup)."""
    factor = 1.0 if spec is None or spec.factor is None else spec.factor
    if spec is None or resource is None or factor == 0:
        return sample.value
    placed = inflight_since(ctx, node.name, sample, spec.lag)
    return sample.value + inflight_percent(node, placed, resource, factor)


@dataclass(frozen=True, slots=True)
class PodMatcher:
    """Which pods a per-pod-class override covers; unset matchers match any pod, set ones are ANDed."""

    pod_selector: LabelSelector | None = None
    namespaces: frozenset[str] | None = None
    priority_class_names: frozenset[str] | None = None

    def matches(self, pod: PodView) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        if self.priority_class_names is not None and pod.priority_class_name not in self.priority_class_names:
            return False
        return self.pod_selector is None or self.pod_selector.matches(pod.labels)


_MATCHERS = ("podSelector", "namespaces", "priorityClassNames")


class PodMatcherSchema(Schema):
    """``{podSelector, namespaces, priorityClassNames}``: at least one; loads a :class:`PodMatcher`.

    Subclass it to add the class's own fields; ``post_load`` passes them on in ``extra``.
    """

    pod_selector = fields.Nested(LabelSelectorSchema, data_key="podSelector")
    namespaces = fields.List(fields.String(), validate=_NOT_EMPTY)
    priority_class_names = fields.List(fields.String(), data_key="priorityClassNames", validate=_NOT_EMPTY)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_matcher(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and not any(key in original for key in _MATCHERS):
            raise ValidationError(f"give at least one of {', '.join(_MATCHERS)}")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        matcher = PodMatcher(
            pod_selector=data.pop("pod_selector", None),
            namespaces=frozenset(data.pop("namespaces")) if "namespaces" in data else None,
            priority_class_names=(
                frozenset(data.pop("priority_class_names")) if "priority_class_names" in data else None
            ),
        )
        return {"matcher": matcher, **data}


def stale_score(on_stale: str, best: float) -> float | Neutral | None:
    """A priority's raw score for a node whose datum is stale: NEUTRAL (neutral), ``best``,
    the rule's highest raw score (allow), or None, the lowest normalised score (deny)."""
    if on_stale == "allow":
        return best
    return None if on_stale == "deny" else NEUTRAL


@dataclass(frozen=True, slots=True)
class InflightSpec:
    """How a rule counts pods placed after its sample was measured: their requests times
    ``factor`` (None: the rule's own default), bound since the sample's time minus ``lag``."""

    factor: float | None = 1.0
    lag: timedelta = timedelta(0)


def _non_negative() -> bool:
    raise ValidationError("must not be negative")


def inflight_schema(factor: float | None = 1.0, lag: timedelta = timedelta(0)) -> type[Schema]:
    """The schema of ``inflight: {factor, lag}`` with these defaults; loads an :class:`InflightSpec`
    (``factor`` None: the rule substitutes its own default)."""

    class InflightSchema(Schema):
        factor_ = fields.Float(
            data_key="factor",
            attribute="factor",
            load_default=factor,
            allow_nan=False,
            validate=validate.Range(min=0, error="must be a non-negative number"),
        )
        lag_ = Duration(
            data_key="lag", attribute="lag", load_default=lag, validate=lambda d: d >= timedelta(0) or _non_negative()
        )

        @post_load
        def _make(self, data: dict[str, Any], **kwargs: Any) -> InflightSpec:
            return InflightSpec(**data)

    return InflightSchema


#: ``inflight`` with every key at its default (rules1's exported name)
InflightSchema = inflight_schema()


def inflight_field(default: InflightSpec | None = InflightSpec()) -> fields.Nested:
    """``inflight: {factor, lag}``: ``default`` when ``inflight`` is omitted (None: in-flight
    accounting off), and its values for keys omitted inside it (1.0 and 0s when it is None)."""
    keys = default if default is not None else InflightSpec()
    return fields.Nested(inflight_schema(keys.factor, keys.lag), load_default=default)


__all__ = [
    "DEFAULT_SOURCE",
    "InflightSchema",
    "InflightSpec",
    "PREDICATE_ON_STALE",
    "PRIORITY_ON_STALE",
    "PodMatcher",
    "PodMatcherSchema",
    "allocatable_amount",
    "fresh_sample",
    "inflight_field",
    "inflight_percent",
    "inflight_schema",
    "inflight_since",
    "max_age_field",
    "on_stale_field",
    "pod_request_percent",
    "source_field",
    "stale_score",
    "with_inflight",
]
