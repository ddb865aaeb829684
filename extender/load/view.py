"""The :class:`~extender.measured.LoadView` of a running extender: samples from the
metric store, placements from the bind history."""

from __future__ import annotations

from typing import Protocol

from extender.measured import NO_INFLIGHT, InFlight, MetricRef, Sample


class SampleReader(Protocol):
    """The refreshed samples (``extender.load.refresher.MetricStore``)."""

    def sample(self, ref: MetricRef, node: str) -> Sample | None: ...

    def max_age(self, ref: MetricRef) -> float: ...


class PlacementReader(Protocol):
    """Pods bound per node over time (``extender.load.binds.BindHistory``)."""

    def placed_since(self, node: str, since: float) -> InFlight: ...


class ClusterLoad:
    """What rules read through ``ctx.load``: each part may be absent (no source configured,
    no pod cache), and then answers as if there were nothing to report."""

    def __init__(self, samples: SampleReader | None = None, placements: PlacementReader | None = None) -> None:
        self._samples = samples
        self._placements = placements

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        return self._samples.sample(ref, node) if self._samples is not None else None

    def max_age(self, ref: MetricRef) -> float:
        return self._samples.max_age(ref) if self._samples is not None else 0.0

    def placed_since(self, node: str, since: float) -> InFlight:
        return self._placements.placed_since(node, since) if self._placements is not None else NO_INFLIGHT
