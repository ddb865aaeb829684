"""Read-only views of measured node load, as rules read it.

Rules never talk to Prometheus, metrics-server or the pod cache: they read the latest
samples and the in-flight placements through a :class:`LoadView` on the request's
:class:`~extender.sdk.rules.Context`. Background refreshers (``extender.load``) keep what
it answers current, so a scheduling call never waits on a source.

Units: a sample's ``value`` is whatever its source query yields; the built-in load rules
expect utilisation in **percent** (0..100, the recording rules under deploy/ produce it).
In-flight requests are in base units: cores for ``cpu``, bytes for ``memory``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple, Protocol

#: what a rule does with a node whose datum is missing or older than its ``maxAge``:
#: a predicate passes (allow) or rejects (deny) the node; a priority gives it the neutral
#: score (neutral), the best (allow) or the lowest (deny)
OnStale = Literal["allow", "deny", "neutral"]
ON_STALE: tuple[OnStale, ...] = ("allow", "deny", "neutral")


class MetricRef(NamedTuple):
    """One metric a rule reads: a source named in the policy's ``sources:`` and a key in it
    (a PromQL expression or a query name for Prometheus; ``cpu``/``memory`` for
    metrics-server; an annotation key for node annotations)."""

    source: str
    key: str

    def __str__(self) -> str:
        return f"{self.source}/{self.key}"


@dataclass(frozen=True, slots=True)
class Sample:
    """A node's value of one metric and when it was measured (POSIX seconds)."""

    value: float
    timestamp: float

    def age(self, now: float) -> float:
        return now - self.timestamp


_NO_REQUESTS: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InFlight:
    """Pods placed on a node in a time range: how many, and their summed requests."""

    count: int = 0
    requests: Mapping[str, float] = field(default_factory=lambda: _NO_REQUESTS)

    def request(self, resource: str) -> float:
        return self.requests.get(resource, 0.0)


NO_INFLIGHT = InFlight()


class LoadView(Protocol):
    """What the rules may read about measured load. Every method answers at once from memory."""

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        """The latest sample of ``ref`` for ``node``, however old (None: the source has none)."""

    def max_age(self, ref: MetricRef) -> float:
        """Seconds after which a sample of ``ref`` counts as stale (the source's ``maxAge``)."""

    def placed_since(self, node: str, since: float) -> InFlight:
        """Pods bound to ``node`` at or after POSIX time ``since`` (pod cache and own binds,
        each pod once)."""


def fresh(sample: Sample | None, now: float, max_age: float) -> bool:
    """Whether ``sample`` exists, is a finite number, and is at most ``max_age`` seconds old."""
    return sample is not None and math.isfinite(sample.value) and now - sample.timestamp <= max_age


class NoLoad:
    """The view when no source is configured: no samples, no placements."""

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        return None

    def max_age(self, ref: MetricRef) -> float:
        return 0.0

    def placed_since(self, node: str, since: float) -> InFlight:
        return NO_INFLIGHT


NO_LOAD: LoadView = NoLoad()


class StaticLoad:
    """A fixed :class:`LoadView` (tests, ``extender explain``): samples by metric then node,
    placements as ``(node, bound_at, requests)``."""

    def __init__(
        self,
        samples: Mapping[MetricRef, Mapping[str, Sample]] | None = None,
        *,
        max_age: float = 120.0,
        placements: tuple[tuple[str, float, Mapping[str, float]], ...] = (),
    ) -> None:
        self._samples = {ref: dict(by_node) for ref, by_node in (samples or {}).items()}
        self._max_age = max_age
        self._placements = placements

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        return self._samples.get(ref, {}).get(node)

    def max_age(self, ref: MetricRef) -> float:
        return self._max_age

    def placed_since(self, node: str, since: float) -> InFlight:
        count, total = 0, dict[str, float]()
        for where, at, requests in self._placements:
            if where == node and at >= since:
                count += 1
                for name, value in requests.items():
                    total[name] = total.get(name, 0.0) + value
        return InFlight(count, MappingProxyType(total)) if count else NO_INFLIGHT
