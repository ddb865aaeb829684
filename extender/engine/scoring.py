"""The priority arithmetic, in one place (documented in README "How scores are computed").

1. Each priority returns a raw score per node on its own scale (higher is better).
2. Per priority, raw scores are min-max normalised across the candidate nodes to 0..10:
   ``10 * (raw - min) / (max - min)``. If every valued node has the same raw score they
   all get 10. A node with no value (the rule returned None) gets 0.
3. Per node, the enforced priorities are combined as a weighted average
   ``sum(weight_i * normalised_i) / sum(weight_i)`` and rounded half up to an integer,
   which stays within 0..10 (kube-scheduler's MaxExtenderPriority).
4. kube-scheduler then multiplies by the extender's ``weight`` and by 10
   (MaxNodeScore / MaxExtenderPriority) and adds it to its own plugins' scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from extender.sdk.rules import MAX_SCORE

MIN_SCORE = 0
#: normalised score given to a node when a priority failed on it with ``onError: allow``
NEUTRAL_SCORE = MAX_SCORE / 2


def normalise(raw: Sequence[float | None]) -> list[float]:
    """Min-max normalise raw scores to 0..10; None (no value) maps to 0."""
    values = [v for v in raw if v is not None]
    if not values:
        return [float(MIN_SCORE)] * len(raw)
    low, high = min(values), max(values)
    if high == low:
        return [float(MAX_SCORE) if v is not None else float(MIN_SCORE) for v in raw]
    span = high - low
    return [float(MIN_SCORE) if v is None else MAX_SCORE * (v - low) / span for v in raw]


def round_half_up(value: float) -> int:
    """Round to the nearest integer, .5 upwards (Python's round() would round 2.5 to 2)."""
    return int(math.floor(value + 0.5))


def combine(columns: Sequence[tuple[float, Sequence[float]]], node_count: int) -> list[int]:
    """Weighted average of normalised columns ``(weight, scores)``, as integers in 0..10."""
    total_weight = sum(weight for weight, _ in columns)
    if total_weight <= 0:
        return [MIN_SCORE] * node_count
    result = []
    for i in range(node_count):
        value = sum(weight * scores[i] for weight, scores in columns) / total_weight
        result.append(min(MAX_SCORE, max(MIN_SCORE, round_half_up(value))))
    return result
