"""Priority ``load-variation-risk``: prefer nodes whose load is low *and* steady.

Trimaran's LoadVariationRiskBalancing score plugin, computed as in kubernetes-sigs/
scheduler-plugins ``pkg/trimaran/loadvariationriskbalancing/analysis.go`` (``computeScore``)
and ``loadvariationriskbalancing.go`` (``Score``), with the resource statistics of
``pkg/trimaran/resourcestats.go``. A node's risk on a resource is its mean utilisation
(plus the pod's request) and a margin times its standard deviation over a window; the
node scores by its riskiest resource, so load is balanced by mean and variation together.

    - type: load-variation-risk
      params:
        source: prometheus              # default; a name under the policy's sources:
        resources:                      # default: both, with these metric keys (percent 0..100)
          cpu: {mean: cpu_usage_avg_1h, stddev: cpu_usage_stddev_1h}
          memory: {mean: mem_usage_avg_1h, stddev: mem_usage_stddev_1h}
        safeVarianceMargin: 1           # default; >= 0
        safeVarianceSensitivity: 1      # default; >= 0 (0: any deviation below 100 % counts as none)
        inflight: {factor: 1.0, lag: 0s}  # default; pods bound since the mean's sample (minus lag)
        onStale: neutral                # neutral (default) | allow (score 100) | deny (lowest)
        maxAge: 2m                      # optional: overrides the source's maxAge

Per resource r (cpu in cores, memory in bytes; A the node's allocatable of r):

    avg    = clamp(mean / 100 x A, 0, A)          # measured usage, absolute
    sd     = clamp(stddev / 100 x A, 0, A)
    req    = the pod's effective request of r + in-flight requests of r x inflight.factor
    mu     = clamp((avg + req) / A, 0, 1)
    sigma  = clamp(margin x (sd / A) ^ (1 / sensitivity), 0, 1)
    risk   = (mu + sigma) / 2
    score_r = (1 - risk) x 100

    score = min over the resources that have data, of score_r

Example, margin 1, sensitivity 1, a 4-core node at mean 30 %, stddev 10 %, pod requesting
1 core: mu = (1.2 + 1) / 4 = 0.55, sigma = 0.1, risk = 0.325, score_cpu = 67.5. With
memory at mean 50 %, stddev 20 % and no memory request: score_memory = 65, score = 65.

A resource has data when both its mean and stddev samples are fresh and the node reports
allocatable of it. As in Trimaran, a node with data for only some resources scores by
those; a node with none gets ``onStale`` (Trimaran: the minimum, i.e. ``onStale: deny``).
Differences from Trimaran: in-flight placements are added to the request (Trimaran's
plugin leaves them to the next measurement); a missing stddev makes the resource stale
rather than counting as 0, which would favour the unmeasured node; the score keeps its
fraction (Trimaran rounds; the engine normalises anyway).

Metric names: ``cpu_usage_avg_1h``/``cpu_usage_stddev_1h`` and ``mem_usage_avg_1h``/
``mem_usage_stddev_1h`` are the ``queries:`` names deploy/prometheus/recording-rules.yaml
suggests for its ``node:*_usage_percent:avg_1h`` and ``:stddev_avg5m_1h`` series (the
stddev is ``stddev_over_time`` of the 5m average); define them under the source's
``queries:``, or name any other key of the source.
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
    inflight_since,
    max_age_field,
    on_stale_field,
    source_field,
    stale_score,
)
from extender.sdk.registry import priority
from extender.sdk.rules import Context, Priority, Neutral
from extender.view import NodeView, PodView

RESOURCES = ("cpu", "memory")
DEFAULT_METRICS = {
    "cpu": ("cpu_usage_avg_1h", "cpu_usage_stddev_1h"),
    "memory": ("mem_usage_avg_1h", "mem_usage_stddev_1h"),
}
#: Trimaran's DefaultSafeVarianceMargin and DefaultSafeVarianceSensitivity
DEFAULT_MARGIN = 1.0
DEFAULT_SENSITIVITY = 1.0
#: the highest score (no load, no variation); what ``onStale: allow`` gives
BEST = 100.0
_NOT_EMPTY = validate.Length(min=1, error="must not be empty")
_NON_NEGATIVE = validate.Range(min=0, error="must be a non-negative number")


@dataclass(frozen=True, slots=True)
class ResourceMetrics:
    """The metrics of one resource: its mean and its standard deviation, in percent."""

    resource: str
    mean: MetricRef
    stddev: MetricRef


@dataclass(frozen=True, slots=True)
class VariationRiskSpec:
    """Validated params of :class:`LoadVariationRiskPriority`."""

    resources: tuple[ResourceMetrics, ...]
    margin: float = DEFAULT_MARGIN
    sensitivity: float = DEFAULT_SENSITIVITY
    inflight: InflightSpec = InflightSpec()
    on_stale: str = "neutral"
    max_age: timedelta | None = None


class ResourceMetricsSchema(Schema):
    mean = fields.String(required=True, validate=_NOT_EMPTY)
    stddev = fields.String(required=True, validate=_NOT_EMPTY)


class ResourcesField(fields.Field[dict[str, dict[str, str]]]):
    """``{cpu: {mean, stddev}, memory: {mean, stddev}}``: at least one resource, errors per key."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, dict[str, str]]:
        if not isinstance(value, Mapping) or not value:
            raise ValidationError("must map cpu and/or memory to {mean: <metric>, stddev: <metric>}")
        loaded: dict[str, dict[str, str]] = {}
        errors: dict[str, Any] = {}
        for name, metrics in value.items():
            if name not in RESOURCES:
                errors[str(name)] = [f"not a resource this rule reads (use {', '.join(RESOURCES)})"]
                continue
            if not isinstance(metrics, Mapping):
                errors[name] = ["must be {mean, stddev}"]
                continue
            try:
                loaded[name] = ResourceMetricsSchema().load(metrics)
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return loaded


class LoadVariationRiskParams(Schema):
    source = source_field()
    resources = ResourcesField(
        load_default=lambda: {r: {"mean": m, "stddev": s} for r, (m, s) in DEFAULT_METRICS.items()}
    )
    margin = fields.Float(
        data_key="safeVarianceMargin", load_default=DEFAULT_MARGIN, allow_nan=False, validate=_NON_NEGATIVE
    )
    sensitivity = fields.Float(
        data_key="safeVarianceSensitivity", load_default=DEFAULT_SENSITIVITY, allow_nan=False, validate=_NON_NEGATIVE
    )
    inflight = inflight_field()
    on_stale = on_stale_field("priority")
    max_age = max_age_field()

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> VariationRiskSpec:
        source = data.pop("source")
        resources = tuple(
            ResourceMetrics(name, MetricRef(source, keys["mean"]), MetricRef(source, keys["stddev"]))
            for name, keys in sorted(data.pop("resources").items(), key=lambda item: RESOURCES.index(item[0]))
        )
        return VariationRiskSpec(resources=resources, **data)


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` within [low, high]; NaN (broken data) counts as ``low``."""
    return low if math.isnan(value) else max(min(value, high), low)


def resource_score(
    mean_pct: float, stddev_pct: float, request: float, allocatable: float, margin: float, sensitivity: float
) -> float:
    """Trimaran's ``computeScore``: (1 - (mu + sigma) / 2) x 100 for one resource."""
    used_avg = _clamp(mean_pct / 100 * allocatable, 0, allocatable)
    used_sd = _clamp(stddev_pct / 100 * allocatable, 0, allocatable)
    mu = _clamp((used_avg + _clamp(request, 0, math.inf)) / allocatable, 0, 1)
    sigma = _clamp(used_sd / allocatable, 0, 1)
    # Go's 1/0 is +Inf, and sigma^Inf is 0 below 1 and 1 at 1: a sensitivity of 0 ignores variation
    sigma = sigma ** (1 / sensitivity) if sensitivity > 0 else (1.0 if sigma >= 1 else 0.0)
    sigma = _clamp(sigma * margin, 0, 1)
    return (1 - (mu + sigma) / 2) * BEST


@priority("load-variation-risk")
class LoadVariationRiskPriority(Priority):
    """Score a node by its riskiest resource: mean plus margin times deviation, with the pod's request."""

    params_schema = LoadVariationRiskParams

    def __init__(self, params: VariationRiskSpec) -> None:
        super().__init__(params)
        self.spec = params
        self.on_stale = params.on_stale

    def metrics(self) -> Sequence[MetricRef]:
        return tuple(ref for r in self.spec.resources for ref in (r.mean, r.stddev))

    def resource_scores(self, pod: PodView, node: NodeView, ctx: Context) -> dict[str, float]:
        """score_r for each resource with fresh data on this node."""
        spec = self.spec
        scores: dict[str, float] = {}
        for metrics in spec.resources:
            resource = metrics.resource
            mean = fresh_sample(ctx, metrics.mean, node.name, spec.max_age)
            stddev = fresh_sample(ctx, metrics.stddev, node.name, spec.max_age)
            allocatable = float(node.allocatable.get(resource, 0))
            if mean is None or stddev is None or not allocatable > 0 or not math.isfinite(allocatable):
                continue
            inflight = inflight_since(ctx, node.name, mean, spec.inflight.lag).request(resource)
            factor = spec.inflight.factor if spec.inflight.factor is not None else 1.0
            request = float(pod.requests.get(resource, 0)) + inflight * factor
            scores[resource] = resource_score(
                mean.value, stddev.value, request, allocatable, spec.margin, spec.sensitivity
            )
        return scores

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | Neutral | None:
        scores = self.resource_scores(pod, node, ctx)
        if not scores:
            return stale_score(self.on_stale, BEST)
        return min(scores.values())
