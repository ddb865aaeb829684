"""Where decision records go: one JSON line each on logger ``extender.decisions`` (INFO), as the
settings say (off / summary / detail, a sampled fraction), and every record to the observers.

Sampling: a call whose record has rule failures (a rule raised) or whose outcome is ``error``
is always logged; the others are logged with probability ``sample``. Observers get every
record, sampled or not (metrics must count every call). Detail (the per node x rule table,
which evaluates every rule on every node again) is added to logged records only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from extender.decisions.record import Record
from extender.engine import RuleFailure
from extender.view import PodView

log = logging.getLogger("extender.decisions")

DecisionLevel = Literal["off", "summary", "detail"]
#: receives each record (a plain dict) after the reply is computed; must not keep it mutable
Observer = Callable[[Record], None]

_encode = msgspec.json.Encoder().encode


class Emitter(Protocol):
    """What the service hands each call's record to: :class:`DecisionLog` or :class:`Capture`."""

    #: node names listed per list, and table rows
    max_nodes: int

    def emit(
        self,
        build: Callable[[], Record],
        *,
        always: bool = False,
        table: Callable[[], dict[str, object]] | None = None,
    ) -> Record | None: ...


@dataclass(frozen=True)
class DecisionLogOptions:
    """``--decision-log``, ``--decision-sample``, ``--decision-max-nodes``, ``--status-tables``."""

    level: DecisionLevel = "summary"
    #: fraction of calls (0..1) whose line is written (failures and errors always are)
    sample: float = 1.0
    #: node names listed per list in a record, and rows in a table (0: no bound)
    max_nodes: int = 20
    #: fraction of calls (0..1) whose record the observers get with its table, logged or
    #: not (the status page's --status-tables): the table evaluates every rule again
    observed_tables: float = 0.0


class DecisionLog:
    """Publishes the records of one service; safe to call from several threads."""

    def __init__(
        self,
        options: DecisionLogOptions = DecisionLogOptions(),
        observers: Sequence[Observer] = (),
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.options = options
        self.observers = tuple(observers)
        self._chance = chance
        self._failed_observers: set[int] = set()
        #: a bound of 0 means none: slices take a large number instead
        self.max_nodes = options.max_nodes if options.max_nodes > 0 else 1 << 62

    def emit(
        self,
        build: Callable[[], Record],
        *,
        always: bool = False,
        table: Callable[[], dict[str, object]] | None = None,
    ) -> Record | None:
        """Build the record (only if it is logged or observed), add the table if detail is
        on and the line is logged, log it, add the table for the observers on a sample of
        calls (``observed_tables``), tell the observers; the record, or None."""
        level = self.options.level
        logged = level != "off" and (always or self.options.sample >= 1.0 or self._chance() < self.options.sample)
        if not logged and not self.observers:
            return None
        record = build()
        if logged:
            if table is not None and level == "detail":
                record["table"] = table()
            if log.isEnabledFor(logging.INFO):
                log.info(_encode(record).decode())  # no args: a '%' in it is never formatted
        tables = self.options.observed_tables
        if table is not None and "table" not in record and tables > 0 and self.observers:
            if tables >= 1.0 or self._chance() < tables:
                record["table"] = table()
        for observer in self.observers:
            try:
                observer(record)
            except Exception:  # noqa: BLE001 - an observer never fails the call
                if id(observer) not in self._failed_observers:
                    self._failed_observers.add(id(observer))
                    log.exception("decision observer %r raised (logged once; the call is answered)", observer)
        return record


def encode_record(record: Record) -> bytes:
    """A record as JSON bytes (what the log line and POST /explain carry)."""
    return _encode(record)


class Capture:
    """Keeps the one record of a call, with its table, instead of publishing it (explain)."""

    def __init__(self, max_nodes: int = 0) -> None:
        self.max_nodes = max_nodes if max_nodes > 0 else 1 << 62
        self._record: Record | None = None

    @property
    def record(self) -> Record:
        assert self._record is not None, "the call recorded nothing"
        return self._record

    def emit(
        self,
        build: Callable[[], Record],
        *,
        always: bool = False,
        table: Callable[[], dict[str, object]] | None = None,
    ) -> Record | None:
        record = build()
        if table is not None:
            record["table"] = table()
        self._record = record
        return record


def warn_failures(verb: str, pod: PodView, failures: Sequence[RuleFailure]) -> None:
    """One WARNING line per rule that raised (whatever the decision log's settings)."""
    for f in failures:
        log.warning(
            "%s pod=%s/%s rule=%s raised on %d evaluation(s), %s: %s",
            verb, pod.namespace, pod.name, f.rule, f.count, f.action, f.first_message,
        )


def summarise_names(names: Sequence[str], shown: int = 10) -> str:
    """``a, b, c, +7 more``: a warning's list of node names."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", +{more} more" if more > 0 else "")
