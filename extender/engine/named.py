"""Verdicts by node name, one table per pod shape, kept until the node changes.

In names mode every call names its nodes, and the node cache says when one changes. For a
pod shape (what the policy's rules say their verdict depends on: the engine's memo key),
:class:`NamedVerdicts` keeps each node's verdict (filter) or raw score row (prioritize) in a
plain dict by node name, so a repeated shape against an unchanged cache costs one dict lookup
per name, with no node view fetched and no per-node object built. The node cache tells the
tables of every change (:meth:`NamedVerdicts.forget`) after it has applied it; a verdict
computed from a view that was replaced meanwhile is dropped again by :meth:`Table.put`, so a
table never keeps a verdict of a node's old state.

A rule's ``valid_until`` (a maintenance window opening, say) is honoured: such entries are
dropped once that time has passed.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

#: tables kept (pod shapes), least recently used dropped first
TABLE_LIMIT = 32


class Table:
    """One pod shape's values by node name."""

    __slots__ = ("values", "_expiring", "_next_expiry")

    def __init__(self) -> None:
        #: node name -> verdict or raw score row; read directly by the engine
        self.values: dict[str, Any] = {}
        #: node name -> POSIX time its entry stops holding (finite expiries only)
        self._expiring: dict[str, float] = {}
        self._next_expiry = math.inf

    def expire(self, now: float) -> None:
        """Drop the entries that stopped holding at ``now``."""
        if now < self._next_expiry:
            return
        remaining = math.inf
        for name, until in list(self._expiring.items()):
            if until <= now:
                self._expiring.pop(name, None)
                self.values.pop(name, None)
            else:
                remaining = min(remaining, until)
        self._next_expiry = remaining

    def put(self, name: str, value: Any, expires: float, still_current: Callable[[], bool]) -> None:
        """Keep ``value`` for ``name`` until ``expires``, unless the node changed while it was
        computed (``still_current`` is asked after the entry is in, so a change the cache
        applies at any moment is either seen here or forgets the entry itself)."""
        if expires != math.inf:
            self._expiring[name] = expires
            self._next_expiry = min(self._next_expiry, expires)
        self.values[name] = value
        if not still_current():
            self.forget(name)

    def forget(self, name: str) -> None:
        self.values.pop(name, None)
        self._expiring.pop(name, None)

    def __len__(self) -> int:
        return len(self.values)


class NamedVerdicts:
    """The tables of one engine, by memo key (see the module docstring)."""

    def __init__(self, limit: int = TABLE_LIMIT) -> None:
        self._limit = limit
        self._tables: OrderedDict[Hashable, Table] = OrderedDict()
        self._lock = threading.Lock()

    def table(self, key: Hashable, now: float) -> Table:
        """The table for ``key`` (made if new), with what expired by ``now`` dropped."""
        table = self._tables.get(key)
        if table is None:
            with self._lock:
                table = self._tables.get(key)
                if table is None:
                    table = self._tables[key] = Table()
                    while len(self._tables) > self._limit:
                        self._tables.popitem(last=False)
        else:
            try:
                self._tables.move_to_end(key)
            except KeyError:  # dropped by another thread meanwhile: this call still uses it
                pass
        table.expire(now)
        return table

    def forget(self, name: str | None) -> None:
        """Node ``name`` changed (None: any node may have: a relist)."""
        if name is None:
            with self._lock:
                self._tables.clear()
            return
        for table in list(self._tables.values()):
            table.forget(name)

    def __len__(self) -> int:
        return len(self._tables)
