"""Priority ``least-loaded``: prefer nodes with the lowest measured utilisation, in-flight pods included.

Per resource, the utilisation is a weighted average over several windows of a metric (in
percent, 0..100); the resources are combined by their own weights, and the raw score is 100
minus the result, so the least loaded node scores highest. Pods placed on a node since its
samples were measured count at their requests, so a burst of pods spreads over the nodes
instead of piling onto the one that looked idlest when the metrics were last taken.

    - type: least-loaded
      params:
        source: prometheus     # default; a name under the policy's sources:
        onStale: neutral       # neutral (default) | allow | deny
        maxAge: 2m             # optional: overrides the source's maxAge
        resources:             # default: cpu and memory, weight 1 each, crane's windows
          cpu:
            weight: 1          # default 1
            windows:           # default for cpu and memory: crane's (below); required otherwise
            - {metric: cpu_usage_avg_5m, weight: 0.2}
            - {metric: cpu_usage_max_avg_1h, weight: 0.3}
            - {metric: cpu_usage_max_avg_1d, weight: 0.5}
          memory:
            windows:
            - {metric: mem_usage_avg_5m, weight: 0.2}
            - {metric: mem_usage_max_avg_1h, weight: 0.3}
            - {metric: mem_usage_max_avg_1d, weight: 0.5}
        inflight: {factor: 1.0, lag: 0s}   # default; factor: 0 turns in-flight accounting off

``resources`` keys are allocatable resource names (``cpu``, ``memory``, or e.g.
``nvidia.com/gpu`` with windows of its own); in-flight requests of a resource are counted
against the node's allocatable of it. Weights must be > 0.

Arithmetic. For window i of resource r with a fresh sample ``u_i`` (percent) and weight
``w_i``, and ``p_i`` = requests of r of the pods bound since that sample's timestamp minus
``lag``, as a percentage of allocatable r, times ``factor`` (0 without allocatable):

    U_r = sum_i w_i * (u_i + p_i) / sum_i w_i          (over r's fresh windows)
    raw = 100 - sum_r W_r * U_r / sum_r W_r

Example, defaults, cpu samples 40/50/60, memory 20/30/40, a 10-core node that received a
pod requesting 1 core (10%) since the samples: U_cpu = 0.2*50 + 0.3*60 + 0.5*70 = 63,
U_mem = 0.2*20 + 0.3*30 + 0.5*40 = 33, raw = 100 - (63 + 33) / 2 = 52. Like every priority,
the engine then min-max normalises the raw scores across the request's nodes to 0..10.

Stale data (no sample, not finite, older than ``maxAge``). A stale window is left out and
the resource's remaining window weights renormalised (a node whose 1d series is missing is
ranked on its 5m and 1h values). A node with no fresh window for some resource gets
``onStale``: ``neutral`` the middle score (5, outside the min and max), ``allow`` the raw
score of an idle node (100), ``deny`` no value (the lowest score, 0).

Where this follows crane-scheduler's Dynamic plugin (gocrane/crane-scheduler,
``deploy/manifests/dynamic/policy.yaml``, ``pkg/plugins/dynamic/stats.go``): the same
metrics and default window weights 0.2/0.3/0.5 for cpu and memory, and with every sample
fresh the same ordering (crane's score ``sum_i w_i * (1 - u_i) * 100 / sum_i w_i`` over all
six metrics equals ``raw`` above with resource weights 1/1). Where it differs: crane counts
a stale metric as a score of 0 with its full weight (as if 100% busy); we renormalise over
the fresh windows and apply ``onStale`` only when a resource has none. Crane subtracts a
fixed "hot value" (pods bound to the node in recent time ranges, default 5 per 5m and 2
per 1m, 10 points per unit) to avoid scheduling hotspots; we add the in-flight pods'
requests as a share of the node's capacity instead, so a pod's weight in the estimate is
what it asked for. Crane's plugin returns an absolute 0..100 score; here the engine
min-max normalises per request like every priority.

Scores change with time alone, so the rule returns no cache key (never memoised).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from extender.measured import MetricRef
from extender.sdk.load import (
    InflightSpec,
    fresh_sample,
    inflight_field,
    max_age_field,
    on_stale_field,
    source_field,
    with_inflight,
)
from extender.sdk.registry import priority
from extender.sdk.rules import NEUTRAL, Context, Priority, Neutral  # Neutral: NEUTRAL's type, for the signature
from extender.view import NodeView, PodView

#: crane-scheduler's default priority windows (metric, weight) per resource
CRANE_WINDOWS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "cpu": (("cpu_usage_avg_5m", 0.2), ("cpu_usage_max_avg_1h", 0.3), ("cpu_usage_max_avg_1d", 0.5)),
    "memory": (("mem_usage_avg_5m", 0.2), ("mem_usage_max_avg_1h", 0.3), ("mem_usage_max_avg_1d", 0.5)),
}
#: raw score of an idle node: what ``onStale: allow`` gives
IDLE_SCORE = 100.0
_POSITIVE = validate.Range(min=0, min_inclusive=False, error="must be greater than 0")
_NOT_EMPTY = validate.Length(min=1, error="must not be empty")


@dataclass(frozen=True, slots=True)
class Window:
    """One metric of a resource and its weight in the resource's average."""

    ref: MetricRef
    weight: float


@dataclass(frozen=True, slots=True)
class ResourceLoad:
    """A resource, its weight among the resources, and its windows."""

    name: str
    weight: float
    windows: tuple[Window, ...]


@dataclass(frozen=True, slots=True)
class LeastLoadedSpec:
    """Validated params of :class:`LeastLoadedPriority`."""

    source: str
    on_stale: str
    max_age: timedelta | None
    resources: tuple[ResourceLoad, ...]
    inflight: InflightSpec | None


class WindowSchema(Schema):
    metric = fields.String(required=True, validate=_NOT_EMPTY)
    weight = fields.Float(required=True, validate=_POSITIVE)


class ResourceSchema(Schema):
    weight = fields.Float(load_default=1.0, validate=_POSITIVE)
    windows = fields.List(fields.Nested(WindowSchema), validate=validate.Length(min=1, error="list at least one"))


class Resources(fields.Field[dict[str, dict[str, Any]]]):
    """``{resource name: {weight, windows}}``, errors reported per resource."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, dict[str, Any]]:
        if not isinstance(value, Mapping) or not value:
            raise ValidationError("must be a non-empty mapping of resource name to {weight, windows}")
        loaded: dict[str, dict[str, Any]] = {}
        errors: dict[str, Any] = {}
        for name, entry in value.items():
            try:
                item: dict[str, Any] = ResourceSchema().load(entry if entry is not None else {})
            except ValidationError as exc:
                errors[str(name)] = exc.messages
                continue
            if "windows" not in item:
                if name not in CRANE_WINDOWS:
                    errors[str(name)] = {"windows": ["required for resources other than cpu and memory"]}
                    continue
                item["windows"] = [{"metric": m, "weight": w} for m, w in CRANE_WINDOWS[name]]
            loaded[str(name)] = item
        if errors:
            raise ValidationError(errors)
        return loaded


_DEFAULT_RESOURCES = {
    name: {"weight": 1.0, "windows": [{"metric": m, "weight": w} for m, w in windows]}
    for name, windows in CRANE_WINDOWS.items()
}


class LeastLoadedParams(Schema):
    source = source_field()
    on_stale = on_stale_field("priority")
    max_age = max_age_field()
    resources = Resources(load_default=lambda: _DEFAULT_RESOURCES)
    inflight = inflight_field(InflightSpec())

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LeastLoadedSpec:
        source = data["source"]
        resources = tuple(
            ResourceLoad(
                name=name,
                weight=entry["weight"],
                windows=tuple(Window(MetricRef(source, w["metric"]), w["weight"]) for w in entry["windows"]),
            )
            for name, entry in data["resources"].items()
        )
        return LeastLoadedSpec(
            source=source,
            on_stale=data["on_stale"],
            max_age=data["max_age"],
            resources=resources,
            inflight=data["inflight"],
        )


@priority("least-loaded")
class LeastLoadedPriority(Priority):
    """Score a node by 100 minus its weighted utilisation, in-flight requests included."""

    params_schema = LeastLoadedParams

    def __init__(self, params: LeastLoadedSpec) -> None:
        super().__init__(params)
        self.spec = params
        #: read by the source refresher's once-per-refresh stale log
        self.on_stale = params.on_stale

    def metrics(self) -> Sequence[MetricRef]:
        return tuple(dict.fromkeys(w.ref for r in self.spec.resources for w in r.windows))

    def utilisation(self, node: NodeView, ctx: Context) -> float | None:
        """The node's combined utilisation in percent (None: some resource has no fresh window)."""
        total = weights = 0.0
        for resource in self.spec.resources:
            used = resource_weights = 0.0
            for window in resource.windows:
                sample = fresh_sample(ctx, window.ref, node.name, self.spec.max_age)
                if sample is None:
                    continue
                value = with_inflight(ctx, node, sample, resource.name, self.spec.inflight)
                if math.isfinite(value):
                    used += window.weight * value
                    resource_weights += window.weight
            if resource_weights == 0:
                return None
            total += resource.weight * used / resource_weights
            weights += resource.weight
        return total / weights

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | Neutral | None:
        used = self.utilisation(node, ctx)
        if used is not None:
            return 100.0 - used
        if self.spec.on_stale == "neutral":
            return NEUTRAL
        return IDLE_SCORE if self.spec.on_stale == "allow" else None
