"""Predicate ``load-threshold``: reject nodes whose measured utilisation is above a threshold.

Each threshold names a metric of the source (a utilisation in percent, 0..100, e.g. crane's
``cpu_usage_avg_5m`` or ``mem_usage_max_avg_1h``) and the most it may be. A node is
rejected by the first threshold it exceeds (in the order listed). Pod classes (first match
wins) replace the default thresholds with their own, or exempt their pods entirely.

    - type: load-threshold
      params:
        source: prometheus       # default; a name under the policy's sources:
        onStale: allow           # allow (default) | deny: a node without a fresh sample
        maxAge: 2m               # optional: overrides the source's maxAge
        thresholds:              # required, at least one
        - {metric: cpu_usage_avg_5m, max: 65}          # resource cpu (from the cpu prefix)
        - {metric: cpu_usage_max_avg_1h, max: 75}
        - {metric: mem_usage_avg_5m, max: 65}          # resource memory (from the mem prefix)
        - {metric: node_gpu_util, max: 90, resource: nvidia.com/gpu, name: gpu-util}
        inflight: {factor: 1.0, lag: 0s}   # optional (default: off)
        podClasses:
        - name: batch
          namespaces: [batch]              # matchers are ANDed, as in node-cost
          thresholds: [{metric: cpu_usage_avg_5m, max: 85}]
        - name: critical
          priorityClassNames: [system-cluster-critical, system-node-critical]
          exempt: true

Params:

``thresholds[]``: ``metric`` (required: the key in the source), ``max`` (required, a
percentage >= 0; the node passes at exactly ``max``), ``resource`` (the allocatable
resource in-flight requests are counted in: default ``cpu`` for a metric whose name starts
with ``cpu``, ``memory`` for ``mem``; required for other metrics when ``inflight`` is set),
``name`` (what rejection reasons call it; default the metric key, so give one when the key
is a long PromQL expression).

``inflight``: when set, the requests of pods bound to the node since the sample's timestamp
minus ``lag`` (from the pod cache and own binds) are added, as a percentage of the node's
allocatable ``resource`` times ``factor`` (default 1.0), to the measured value before it is
compared: a burst of placements cannot push a node far past the threshold in the time it
takes the metric to see them. ``lag`` (default 0s) widens that range for metrics that
average over a window and so keep missing a new pod's usage for a while after it starts.
A node with no allocatable of the resource adds nothing. Default: off (measured values only).

Arithmetic, per threshold: ``value = sample + 100 * factor * inflight_requests / allocatable``;
reject if ``value > max``. With ``thresholds: [{metric: cpu_usage_avg_5m, max: 65}]``,
``inflight: {}``, a node at 50% with 8 allocatable cores that received pods requesting 1.5
cores since the sample: 50 + 100 * 1.5 / 8 = 68.75 > 65: rejected.

``podClasses[]``: ``name`` (required, unique), at least one of ``podSelector``,
``namespaces``, ``priorityClassNames``, and exactly one of ``thresholds`` (replacing the
default list for the class's pods) or ``exempt: true`` (the rule does not apply to the pods:
``applies_to`` is false, as if it were not configured for them).

Stale data (no sample, not a finite number, or older than ``maxAge``): with ``onStale:
allow`` the threshold is skipped (the others still apply); with ``deny`` the node is
rejected. Reasons are short and categorical, since kube-scheduler aggregates them per
reason: ``node(s) had cpu_usage_avg_5m above 65%`` and ``node(s) had no fresh load metric
cpu_usage_avg_5m``. Neither is resolvable by preemption: evicting pods does not lower the
measured load in time for this scheduling cycle.

Verdicts change with time alone, so the rule returns no cache key (never memoised).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.measured import MetricRef
from extender.sdk.load import (
    InflightSpec,
    PodMatcher,
    PodMatcherSchema,
    fresh_sample,
    inflight_field,
    max_age_field,
    on_stale_field,
    source_field,
    with_inflight,
)
from extender.sdk.params import duplicate_names
from extender.sdk.registry import predicate
from extender.sdk.rules import Context, Predicate, Rejection
from extender.view import NodeView, PodView

_NOT_EMPTY = validate.Length(min=1, error="must not be empty")
#: metric-name prefixes and the allocatable resource their in-flight requests count in
RESOURCE_PREFIXES = (("cpu", "cpu"), ("mem", "memory"))


def infer_resource(metric: str) -> str | None:
    """``cpu`` for ``cpu...`` metrics, ``memory`` for ``mem...``, else None."""
    for prefix, resource in RESOURCE_PREFIXES:
        if metric.startswith(prefix):
            return resource
    return None


@dataclass(frozen=True, slots=True)
class Threshold:
    """One limit: ``ref``'s value (plus in-flight ``resource`` requests) must not exceed ``max``."""

    ref: MetricRef
    max: float
    resource: str | None
    name: str

    def reason(self) -> str:
        return f"node(s) had {self.name} above {self.max:g}%"

    def stale_reason(self) -> str:
        return f"node(s) had no fresh load metric {self.name}"


@dataclass(frozen=True, slots=True)
class LoadClass:
    """Pods a class covers and their thresholds (None: exempt)."""

    name: str
    matcher: PodMatcher
    thresholds: tuple[Threshold, ...] | None


@dataclass(frozen=True, slots=True)
class LoadThresholdSpec:
    """Validated params of :class:`LoadThresholdPredicate`."""

    source: str
    on_stale: str
    max_age: timedelta | None
    thresholds: tuple[Threshold, ...]
    inflight: InflightSpec | None = None
    pod_classes: tuple[LoadClass, ...] = ()


class ThresholdSchema(Schema):
    """``{metric, max, resource, name}``; loaded as a dict (the source is the rule's)."""

    metric = fields.String(required=True, validate=_NOT_EMPTY)
    max = fields.Float(required=True, validate=validate.Range(min=0, error="must be a percentage >= 0"))
    resource = fields.String(validate=_NOT_EMPTY)
    name = fields.String(validate=_NOT_EMPTY)


def _thresholds_field(required: bool) -> fields.List[Any]:
    return fields.List(
        fields.Nested(ThresholdSchema), required=required, validate=validate.Length(min=1, error="list at least one")
    )


class LoadClassSchema(PodMatcherSchema):
    name = fields.String(required=True, validate=_NOT_EMPTY)
    thresholds = _thresholds_field(required=False)
    exempt = fields.Boolean()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _thresholds_or_exempt(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if not isinstance(original, Mapping):
            return
        if ("thresholds" in original) == (original.get("exempt") is True):
            raise ValidationError("give either thresholds or exempt: true")


class LoadThresholdParams(Schema):
    source = source_field()
    on_stale = on_stale_field("predicate")
    max_age = max_age_field()
    thresholds = _thresholds_field(required=True)
    inflight = inflight_field(None)
    pod_classes = fields.List(fields.Nested(LoadClassSchema), data_key="podClasses", load_default=list)

    @validates_schema(skip_on_field_errors=False)
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        if data.get("inflight") is not None:
            _need_resources(data.get("thresholds") or (), errors, "thresholds")
        duplicates = duplicate_names(data.get("pod_classes"), "pod class")
        if duplicates:
            errors["podClasses"] = duplicates
        for index, pod_class in enumerate(data.get("pod_classes") or ()):
            if data.get("inflight") is not None and pod_class.get("thresholds"):
                nested: dict[str, Any] = {}
                _need_resources(pod_class["thresholds"], nested, "thresholds")
                if nested:
                    errors.setdefault("podClasses", {}).setdefault(index, {}).update(nested)
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LoadThresholdSpec:
        source = data["source"]
        classes = tuple(
            LoadClass(
                name=c["name"],
                matcher=c["matcher"],
                thresholds=None if c.get("exempt") else _thresholds(source, c["thresholds"]),
            )
            for c in data["pod_classes"]
        )
        return LoadThresholdSpec(
            source=source,
            on_stale=data["on_stale"],
            max_age=data["max_age"],
            thresholds=_thresholds(source, data["thresholds"]),
            inflight=data["inflight"],
            pod_classes=classes,
        )


def _need_resources(thresholds: Sequence[Mapping[str, Any]], errors: dict[str, Any], key: str) -> None:
    for index, entry in enumerate(thresholds):
        metric = entry.get("metric", "")
        if metric and "resource" not in entry and infer_resource(metric) is None:
            errors.setdefault(key, {})[index] = {
                "resource": [f"required with inflight: {metric!r} starts with neither cpu nor mem"]
            }


def _thresholds(source: str, entries: Sequence[Mapping[str, Any]]) -> tuple[Threshold, ...]:
    return tuple(
        Threshold(
            ref=MetricRef(source, e["metric"]),
            max=e["max"],
            resource=e.get("resource") or infer_resource(e["metric"]),
            name=e.get("name") or e["metric"],
        )
        for e in entries
    )


@predicate("load-threshold")
class LoadThresholdPredicate(Predicate):
    """Reject nodes whose measured (plus in-flight) utilisation exceeds a threshold."""

    params_schema = LoadThresholdParams

    def __init__(self, params: LoadThresholdSpec) -> None:
        super().__init__(params)
        self.spec = params
        #: read by the source refresher's once-per-refresh stale log
        self.on_stale = params.on_stale

    def metrics(self) -> Sequence[MetricRef]:
        refs = [t.ref for t in self.spec.thresholds]
        refs += [t.ref for c in self.spec.pod_classes for t in c.thresholds or ()]
        return tuple(dict.fromkeys(refs))

    def thresholds_for(self, pod: PodView) -> tuple[Threshold, ...] | None:
        """The pod's class's thresholds (None: exempt), else the default ones."""
        for pod_class in self.spec.pod_classes:
            if pod_class.matcher.matches(pod):
                return pod_class.thresholds
        return self.spec.thresholds

    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        return self.thresholds_for(pod) is not None

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        spec = self.spec
        for threshold in self.thresholds_for(pod) or ():
            sample = fresh_sample(ctx, threshold.ref, node.name, spec.max_age)
            value = math.nan if sample is None else with_inflight(ctx, node, sample, threshold.resource, spec.inflight)
            if not math.isfinite(value):
                if spec.on_stale == "deny":
                    return Rejection(threshold.stale_reason())
                continue
            if value > threshold.max:
                return Rejection(threshold.reason())
        return None
