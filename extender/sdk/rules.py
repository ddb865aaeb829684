"""The rule interface: what a predicate or a priority implements.

A rule is constructed once per policy load with its validated params and is then called
concurrently from several request threads: keep per-request state out of ``self``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from marshmallow import Schema

from extender.measured import NO_LOAD, LoadView, MetricRef
from extender.view import NodeView, PodView


#: Each priority is normalised to 0..MAX_SCORE across the candidate nodes, and the
#: combined answer is an integer in 0..MAX_SCORE (kube-scheduler's MaxExtenderPriority).
MAX_SCORE = 10


class NoParams(Schema):
    """Params schema of a rule that takes no params (any key is an error)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Per-request facts shared by every rule: the time the request is evaluated at, and
    measured node load (samples and in-flight placements; empty without sources)."""

    now: datetime
    load: LoadView = NO_LOAD


class _Neutral:
    """The type of :data:`NEUTRAL`."""

    _instance: _Neutral | None = None

    def __new__(cls) -> _Neutral:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEUTRAL"


#: what :meth:`Priority.score` returns for a node it has no opinion on (e.g. its load
#: datum is stale and ``onStale: neutral``): the node gets the middle normalised score (5),
#: and the other nodes are normalised among themselves
NEUTRAL: Final = _Neutral()
#: the type of NEUTRAL, for a priority's ``score`` annotation: ``float | Neutral | None``
Neutral = _Neutral


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a predicate rejects a node.

    ``reason`` is aggregated by kube-scheduler into the pod's FailedScheduling event
    ("0/8 nodes are available: 3 <reason>"), so keep it short and categorical, in the
    scheduler's style: ``node(s) had condition KernelDeadlock=True``. ``resolvable``
    says whether evicting pods (preemption) could make the node fit: it sends the node to
    ``FailedNodes`` instead of ``FailedAndUnresolvableNodes``.
    """

    reason: str
    resolvable: bool = False


class Rule(ABC):
    """Common part of predicates and priorities."""

    #: marshmallow schema that validates (and may convert, via ``@post_load``) ``params``.
    params_schema: ClassVar[type[Schema]] = NoParams
    #: the name the rule is registered under (set by the ``@predicate``/``@priority`` decorator).
    type_name: ClassVar[str] = ""

    def __init__(self, params: Any = None) -> None:
        self.params: Any = params if params is not None else {}

    def metrics(self) -> Sequence[MetricRef]:
        """The metrics this rule reads through ``ctx.load`` (the policy loader checks their
        sources exist; the sources' refreshers fetch them). Rules that read none return ()."""
        return ()

    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        """Whether the rule has an opinion about this pod at all (checked once per request)."""
        return True

    def cache_key(self, pod: PodView, ctx: Context) -> Hashable | None:
        """Opt in to verdict caching for nodes from the node cache (names mode).

        Return what about the pod this rule's verdict depends on (``()`` if nothing), or
        None (the default) to be evaluated on every request. A cached verdict for a node is
        reused for pods with an equal key until the node changes or :meth:`valid_until`
        passes; keep keys small (a mapping's index, not the whole pod).
        """
        return None

    def valid_until(self, pod: PodView, node: NodeView, ctx: Context) -> datetime | None:
        """When this node's verdict may change with time alone (None: only when the node
        changes). Only consulted for rules that return a :meth:`cache_key`."""
        return None


class Predicate(Rule):
    """A filter: rejects nodes the pod must not run on."""

    @abstractmethod
    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        """Return None if ``node`` may take ``pod``, else a :class:`Rejection`."""


class Priority(Rule):
    """A scorer: higher raw scores mean better nodes, on whatever scale suits the rule.

    The engine normalises each priority to 0..10 across the candidate nodes, so a rule
    never needs to know the other nodes. Return None when the rule has no value for a
    node (e.g. a missing label): that node gets the rule's lowest normalised score.
    Return :data:`NEUTRAL` for the middle score (5) instead.
    """

    @abstractmethod
    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | _Neutral | None:
        """Raw score of ``node`` for ``pod``; higher is better."""


RuleParams = Mapping[str, Any]
