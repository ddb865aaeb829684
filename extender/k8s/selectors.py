"""Label selectors and node requirements, compiled once per policy load.

``LabelSelector`` is the Kubernetes ``metav1.LabelSelector`` (matchLabels + matchExpressions
with In, NotIn, Exists, DoesNotExist). ``Requirement`` extends one expression with what
nodeAffinity cannot express: reading annotations as well as labels, and ``Gt``/``Lt`` on
decimal numbers and on timestamps (``now``, ``now+24h``, RFC 3339).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from extender.k8s.timefmt import parse_time_reference, parse_timestamp

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
SET_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
ALL_OPERATORS = (*SET_OPERATORS, "Gt", "Lt")


def _as_number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


@dataclass(frozen=True)
class Requirement:
    """One ``key operator values`` test against a string map (labels or annotations).

    ``Gt``/``Lt`` compare numerically when the single value is a number, otherwise as
    timestamps; a node value that does not parse does not satisfy the requirement
    (as with nodeAffinity's Gt/Lt on a non-integer label).
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()
    source: Literal["label", "annotation"] = "label"
    _number: Decimal | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.operator in ("Gt", "Lt"):
            object.__setattr__(self, "_number", _as_number(self.values[0]))

    def matches(self, values: Mapping[str, str], now: datetime) -> bool:
        """Evaluate against ``values`` (the labels or annotations named by ``source``)."""
        op = self.operator
        if op == "Exists":
            return self.key in values
        if op == "DoesNotExist":
            return self.key not in values
        actual = values.get(self.key)
        if op == "In":
            return actual is not None and actual in self.values
        if op == "NotIn":
            return actual is None or actual not in self.values
        if actual is None:
            return False
        if self._number is not None:
            number = _as_number(actual)
            if number is None:
                return False
            return number > self._number if op == "Gt" else number < self._number
        try:
            when = parse_timestamp(actual)
        except ValueError:
            return False
        bound = parse_time_reference(self.values[0], now)
        return when > bound if op == "Gt" else when < bound

    def describe(self) -> str:
        """Human-readable form for reasons and logs, e.g. ``node-pool in (a,b)``."""
        where = "" if self.source == "label" else "annotation "
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{where}{self.key} {'exists' if self.operator == 'Exists' else 'absent'}"
        if self.operator in ("In", "NotIn"):
            word = "in" if self.operator == "In" else "notin"
            return f"{where}{self.key} {word} ({','.join(self.values)})"
        return f"{where}{self.key} {'>' if self.operator == 'Gt' else '<'} {self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A compiled ``metav1.LabelSelector``; the empty selector matches everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: Sequence[Requirement] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        # Label selectors have no time operators; ``now`` is never consulted.
        return all(expr.matches(labels, _EPOCH) for expr in self.match_expressions)

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Requirements on a node's labels and annotations that must all hold (AND)."""

    requirements: Sequence[Requirement]

    def matches(self, labels: Mapping[str, str], annotations: Mapping[str, str], now: datetime) -> bool:
        for req in self.requirements:
            if not req.matches(labels if req.source == "label" else annotations, now):
                return False
        return True

    def describe(self) -> str:
        return ", ".join(req.describe() for req in self.requirements)


_EPOCH = datetime.fromtimestamp(0).astimezone()
