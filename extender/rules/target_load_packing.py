"""Priority ``target-load-packing``: pack nodes up to a target CPU utilisation, then spread.

Trimaran's TargetLoadPacking score plugin, computed as in kubernetes-sigs/scheduler-plugins
``pkg/trimaran/targetloadpacking/targetloadpacking.go`` (``Score`` and ``PredictUtilisation``).
It is a best-fit bin packing on *measured* CPU: nodes whose predicted utilisation with the
pod stays at or below the target score higher the fuller they get; past the target the
score falls steeply to 0 at 100 %.

    - type: target-load-packing
      params:
        source: prometheus            # default; a name under the policy's sources:
        metric: cpu_usage_avg_5m      # default; the node's CPU utilisation in percent (0..100), a
                                      # key of the source (the queries: name of node:cpu_usage_percent:avg5m)
        targetUtilization: 40         # default; percent, 0 < t <= 100
        defaultRequests: {cpu: 1000m} # default; predicted CPU of a container without requests or limits
        defaultRequestsMultiplier: 1.5  # default; predicted CPU = requests x this when no limit is set
        inflight:                     # pods bound since the sample (minus lag) are added, as
          factor: 1.5                 # Trimaran's pod-assign cache does; default: defaultRequestsMultiplier
          lag: 60s                    # default (Trimaran's metricsAgentReportingIntervalSeconds)
        onStale: neutral              # neutral (default) | allow (score 100) | deny (lowest)
        maxAge: 2m                    # optional: overrides the source's maxAge

The arithmetic, with every CPU amount in cores and C the node's CPU *capacity* (Trimaran
reads ``status.capacity``; allocatable when the node reports no capacity):

    pod    = sum over app containers of predict(container) + pod overhead cpu
    predict(container) = its cpu limit if set,
                         else its cpu request x defaultRequestsMultiplier if set,
                         else defaultRequests.cpu
    used   = metric / 100 x C
    missing = (summed cpu requests of pods bound since sample time - lag) x inflight.factor
    U      = 100 x (used + pod + missing) / C            # predicted utilisation, percent
    score  = (100 - t) x U / t + t                       if U <= t   (t at U = 0, 100 at U = t)
           = t x (100 - U) / (100 - t)                   if t < U <= 100   (100 at t, 0 at 100)
           = 0                                           if U > 100

Example, t = 40 on a 4-core node at 20 % (0.8 cores used) for a pod with one container
requesting 500m and no limit: pod = 0.5 x 1.5 = 0.75 cores, U = 100 x 1.55 / 4 = 38.75,
score = 60 x 38.75 / 40 + 40 = 98.125. At 50 % instead, U = 68.75 and score =
40 x 31.25 / 60 = 20.83.

Init containers are ignored, as Trimaran ignores them. Differences from Trimaran, all
deliberate: the score keeps its fraction (Trimaran rounds to an integer; the engine
min-max normalises anyway, so rounding would only add ties). Trimaran predicts in-flight
pods with ``PredictUtilisation`` too; the pod cache keeps only their summed requests, so
they count as requests x ``inflight.factor`` (a pod without a cpu request adds nothing).
A node without a fresh, finite sample, or reporting no CPU at all, gets ``onStale``
(Trimaran: the minimum score, i.e. ``onStale: deny``); a negative sample or in-flight
total counts as 0, so scores stay within 0..100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from extender.k8s.quantity import parse_quantity
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
from extender.view import ContainerResources, NodeView, PodView

DEFAULT_METRIC = "cpu_usage_avg_5m"
DEFAULT_TARGET = 40.0
DEFAULT_CPU_REQUEST = Decimal(1)  # 1000m
DEFAULT_MULTIPLIER = 1.5
#: Trimaran's metricsAgentReportingIntervalSeconds: pods bound this long before the sample count as missing
DEFAULT_LAG = timedelta(seconds=60)
#: the highest score (at U = t); what ``onStale: allow`` gives
BEST = 100.0


class CpuQuantity(fields.Field[Decimal]):
    """A non-negative CPU quantity (``1000m``, ``1``, ``0.5``) in cores."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("must be a CPU quantity such as 1000m or 1")
        try:
            cores = parse_quantity(value)
        except (ValueError, ArithmeticError):
            raise ValidationError(f"not a CPU quantity: {value!r} (use e.g. 1000m or 1)") from None
        if not cores.is_finite() or cores < 0:
            raise ValidationError("must be a non-negative CPU quantity")
        return cores


class DefaultRequestsSchema(Schema):
    cpu = CpuQuantity(load_default=DEFAULT_CPU_REQUEST)


@dataclass(frozen=True, slots=True)
class TargetLoadSpec:
    """Validated params of :class:`TargetLoadPackingPriority`."""

    source: str = "prometheus"
    metric: str = DEFAULT_METRIC
    target_utilization: float = DEFAULT_TARGET
    default_cpu_request: Decimal = DEFAULT_CPU_REQUEST
    default_requests_multiplier: float = DEFAULT_MULTIPLIER
    inflight: InflightSpec = InflightSpec(DEFAULT_MULTIPLIER, DEFAULT_LAG)
    on_stale: str = "neutral"
    max_age: timedelta | None = None


class TargetLoadPackingParams(Schema):
    source = source_field()
    metric = fields.String(load_default=DEFAULT_METRIC, validate=validate.Length(min=1, error="must not be empty"))
    target_utilization = fields.Float(
        data_key="targetUtilization",
        load_default=DEFAULT_TARGET,
        allow_nan=False,
        validate=validate.Range(min=0, max=100, min_inclusive=False, error="must be a percentage in (0, 100]"),
    )
    default_requests = fields.Nested(DefaultRequestsSchema, data_key="defaultRequests", load_default=dict)
    default_requests_multiplier = fields.Float(
        data_key="defaultRequestsMultiplier",
        load_default=DEFAULT_MULTIPLIER,
        allow_nan=False,
        validate=validate.Range(min=0, error="must be a non-negative number"),
    )
    inflight = inflight_field(InflightSpec(None, DEFAULT_LAG))
    on_stale = on_stale_field("priority")
    max_age = max_age_field()

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> TargetLoadSpec:
        defaults = data.pop("default_requests")
        inflight: InflightSpec = data.pop("inflight")
        if inflight.factor is None:  # Trimaran predicts in-flight pods like the pod itself
            inflight = InflightSpec(data["default_requests_multiplier"], inflight.lag)
        cpu = defaults.get("cpu", DEFAULT_CPU_REQUEST)
        return TargetLoadSpec(**data, default_cpu_request=cpu, inflight=inflight)


def predict_container_cpu(container: ContainerResources, default_cpu: float, multiplier: float) -> float:
    """Trimaran's ``PredictUtilisation``: the limit, else requests x multiplier, else the default (cores)."""
    if "cpu" in container.limits:
        return _cores(container.limits["cpu"])
    if "cpu" in container.requests:
        return _cores(container.requests["cpu"]) * multiplier
    return default_cpu


def _cores(raw: str | int | float) -> float:
    try:
        value = float(parse_quantity(raw))
    except (ValueError, ArithmeticError):
        return 0.0  # an unparsable quantity the API server would have refused: predict nothing
    return value if math.isfinite(value) else 0.0


def target_load_score(predicted: float, target: float) -> float:
    """Trimaran's score of a node whose predicted utilisation is ``predicted`` percent."""
    if predicted > target:
        if predicted > 100:
            return 0.0
        return target * (100 - predicted) / (100 - target)
    return (100 - target) * predicted / target + target


@priority("target-load-packing")
class TargetLoadPackingPriority(Priority):
    """Score a node by Trimaran's target-load-packing curve of its predicted CPU utilisation."""

    params_schema = TargetLoadPackingParams

    def __init__(self, params: TargetLoadSpec) -> None:
        super().__init__(params)
        self.spec = params
        self.on_stale = params.on_stale
        self._ref = MetricRef(params.source, params.metric)

    def metrics(self) -> Sequence[MetricRef]:
        return (self._ref,)

    def pod_cpu(self, pod: PodView) -> float:
        """The pod's predicted CPU in cores: its app containers' predictions plus overhead."""
        spec = self.spec
        default = float(spec.default_cpu_request)
        total = sum(
            predict_container_cpu(c, default, spec.default_requests_multiplier) for c in pod.containers
        )
        return total + float(pod.overhead.get("cpu", 0))

    def predicted_utilisation(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        """U, percent of the node's CPU capacity; None when the sample is stale or the node has no CPU."""
        sample = fresh_sample(ctx, self._ref, node.name, self.spec.max_age)
        capacity = float(node.capacity.get("cpu") or node.allocatable.get("cpu") or 0)
        if sample is None or not capacity > 0:
            return None
        # negative readings are broken data, not spare capacity: they count as 0
        used = max(sample.value, 0.0) / 100 * capacity
        missing = inflight_since(ctx, node.name, sample, self.spec.inflight.lag).request("cpu")
        missing = missing if missing > 0 else 0.0  # NaN too
        factor = self.spec.inflight.factor if self.spec.inflight.factor is not None else 1.0
        return 100 * (used + self.pod_cpu(pod) + missing * factor) / capacity

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | Neutral | None:
        predicted = self.predicted_utilisation(pod, node, ctx)
        if predicted is None or not math.isfinite(predicted):
            return stale_score(self.on_stale, BEST)
        return target_load_score(predicted, self.spec.target_utilization)
