"""The priority arithmetic, in one place (documented in README "How scores are computed").

1. Each priority returns a raw score per node on its own scale (higher is better).
2. Per priority, raw scores are min-max normalised across the candidate nodes to 0..10:
   ``10 * (raw - min) / (max - min)``. If every valued node has the same raw score they
   all get 10. A node with no value (the rule returned None) gets 0; a node the rule
   returned NEUTRAL for gets 5 and takes no part in the min and max.
3. Per node, the enforced priorities are combined as a weighted average
   ``sum(weight_i * normalised_i) / sum(weight_i)`` and rounded half up to an integer,
   which stays within 0..10 (kube-scheduler's MaxExtenderPriority).
4. kube-scheduler then multiplies by the extender's ``weight`` and by 10
   (MaxNodeScore / MaxExtenderPriority) and adds it to its own plugins' scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from extender.sdk.rules import MAX_SCORE, NEUTRAL

MIN_SCORE = 0
#: normalised score given to a node when a priority failed on it with ``onError: allow``
NEUTRAL_SCORE = MAX_SCORE / 2


def normalise(raw: Sequence[Any]) -> list[float]:
    """Min-max normalise raw scores to 0..10; None (no value) maps to 0, NEUTRAL to 5."""
    values = [v for v in raw if v is not None and v is not NEUTRAL]
    if not values:
        return [NEUTRAL_SCORE if v is NEUTRAL else float(MIN_SCORE) for v in raw]
    low, high = min(values), max(values)

    def scaled(v: Any) -> float:
        if v is None:
            return float(MIN_SCORE)
        if v is NEUTRAL:
            return NEUTRAL_SCORE
        return scaled_score(v, low, high)

    return [scaled(v) for v in raw]


def scaled_score(value: Any, low: Any, high: Any) -> float:
    """``value``'s min-max normalised score, 0..10, in a column from ``low`` to ``high``."""
    return float(MAX_SCORE) if high == low else MAX_SCORE * (value - low) / (high - low)


def numeric_bounds(column: Sequence[Any], failed: object) -> tuple[Any, Any] | None:
    """(min, max) of a column in which every node has a number, else None (a missing
    value, a failure or NEUTRAL: normalise it with :func:`normalised_column`)."""
    try:  # min/max raise on a missing value (None) or a failure
        low, high = min(column), max(column)
    except TypeError:
        return None
    if low is None or low is failed or low is NEUTRAL or high is NEUTRAL:  # e.g. a one-node column
        return None
    return low, high


def round_half_up(value: float) -> int:
    """Round to the nearest integer, .5 upwards (Python's round() would round 2.5 to 2)."""
    return int(math.floor(value + 0.5))


#: ties are decided within this tolerance, so both code paths below round x.5 up even when
#: float arithmetic lands a hair below it
_TIE = 1e-9


def combine(columns: Sequence[tuple[float, Sequence[float]]], node_count: int) -> list[int]:
    """Weighted average of normalised columns ``(weight, scores)``, as integers in 0..10."""
    total_weight = sum(weight for weight, _ in columns)
    if total_weight <= 0:
        return [MIN_SCORE] * node_count
    totals = [0.0] * node_count
    for weight, scores in columns:
        totals = [total + weight * score for total, score in zip(totals, scores)]
    # A weighted average of values in 0..10 stays in 0..10 (float error is far below the
    # 0.5 that would change the rounding), and int(x + 0.5) rounds half up for x >= 0.
    return [int(total / total_weight + 0.5 + _TIE) for total in totals]


def normalised_column(raw: Sequence[Any], error_score: float, failed: object) -> list[float]:
    """:func:`normalise`, with entries that are ``failed`` set to ``error_score``."""
    if failed not in raw:
        return normalise(raw)
    column = normalise([None if value is failed else value for value in raw])
    return [error_score if value is failed else score for value, score in zip(raw, column)]


def _score_slowly(
    raw_columns: Sequence[Sequence[Any]],
    weights: Sequence[float],
    error_scores: Sequence[float],
    failed: object,
    node_count: int,
) -> list[int]:
    columns = [normalised_column(c, e, failed) for c, e in zip(raw_columns, error_scores)]
    return combine(list(zip(weights, columns)), node_count)


def score_columns(
    raw_columns: Sequence[Sequence[Any]],
    weights: Sequence[float],
    error_scores: Sequence[float],
    failed: object,
    node_count: int,
    bounds: list[tuple[Any, Any]] | None = None,
) -> list[int]:
    """Normalise each priority's raw column and combine them: the final 0..10 scores.
    ``bounds`` gets each column's (min, max) when every column is all numbers (to explain
    a node's normalised scores without another pass).

    When every node has a value in every column (the usual case) this is one pass: the
    weighted average of min-max normalised columns is linear in the raw scores,
    ``sum(a_i * raw_i) + b``, so no normalised column is built.
    """
    total_weight = sum(weights)
    if total_weight <= 0 or not raw_columns or node_count == 0:
        return [MIN_SCORE] * node_count
    offset = _TIE + 0.5
    linear: list[tuple[float, Sequence[float]]] = []
    for weight, column in zip(weights, raw_columns):
        found = numeric_bounds(column, failed)
        if found is None:  # the general path
            return _score_slowly(raw_columns, weights, error_scores, failed, node_count)
        low, high = found
        if bounds is not None:
            bounds.append((low, high))
        if high == low:
            offset += MAX_SCORE * weight / total_weight  # every node gets 10
        else:
            slope = MAX_SCORE * weight / (total_weight * (high - low))
            offset -= slope * low
            linear.append((slope, column))
    if not linear:
        return [int(offset)] * node_count
    if len(linear) == 1:
        (a, xs), = linear
        return [int(a * x + offset) for x in xs]
    if len(linear) == 2:
        (a, xs), (b, ys) = linear
        return [int(a * x + b * y + offset) for x, y in zip(xs, ys)]
    totals = [offset] * node_count
    for slope, column in linear:
        totals = [total + slope * x for total, x in zip(totals, column)]
    return [int(total) for total in totals]
