"""The interface every metric source implements, and what it may read about the cluster."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping

from extender.engine.model import SourceSpec
from extender.measured import Sample
from extender.view import NodeView

#: what a fetch returns: metric key -> node name -> sample
Samples = Mapping[str, Mapping[str, Sample]]

#: the nodes a source may map series through (the node cache, or the nodes seen in
#: full-node requests): called from the refresher thread, never on the request path
NodeLister = Callable[[], Iterable[NodeView]]


class SourceError(Exception):
    """A fetch failed as a whole (unreachable, timed out, an error answer, garbage).

    The message is written for operators and is logged once per refresh; the source's
    previous samples stay until they pass ``maxAge``.
    """


class MetricSource(ABC):
    """Fetches the current value of every requested metric for every node it can, in as
    few requests as it can (Prometheus: one instant query per metric, all nodes at once).

    Called only from its refresher's thread, one fetch at a time; it must return or raise
    within ``spec.timeout`` seconds (plus connection set-up), and never raise anything but
    :class:`SourceError` for a failed fetch. A metric that fails alone (e.g. one bad
    PromQL expression) is left out of the result and reported in :attr:`partial_errors`.
    """

    def __init__(self, spec: SourceSpec, nodes: NodeLister) -> None:
        self.spec = spec
        self.nodes = nodes
        #: per metric key, why it is missing from the last fetch (cleared on each fetch)
        self.partial_errors: dict[str, str] = {}
        #: per metric key, notes on samples that came back incomplete (unmapped series, a
        #: node with several series, the source's own warnings); cleared on each fetch
        self.warnings: dict[str, list[str]] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def fetch(self, keys: Collection[str]) -> Samples:
        """The latest sample of each of ``keys`` for each node; raise :class:`SourceError`."""

    def close(self) -> None:
        """Release connections (called once, at shutdown)."""
