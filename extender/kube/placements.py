"""Placements this extender made recently, before the pod cache (if any) reflects them.

The binder records each successful bind; load-aware rules can count a node's in-flight
pods from here during the seconds it takes the pod's update to come back through a watch.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placement:
    uid: str
    namespace: str
    name: str
    node: str
    at: float  # time.monotonic()


class RecentPlacements:
    """Bounded, time-limited record of binds, keyed by pod UID (a retried bind counts once)."""

    def __init__(self, ttl: float = 120.0, max_entries: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._by_uid: OrderedDict[str, Placement] = OrderedDict()

    def record(self, uid: str, namespace: str, name: str, node: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)
            self._by_uid[uid] = Placement(uid, namespace, name, node, self.clock())
            self._expire()

    def forget(self, uid: str) -> None:
        """The pod cache has seen the pod bound: it no longer needs tracking here."""
        with self._lock:
            self._by_uid.pop(uid, None)

    def on_node(self, node: str) -> list[Placement]:
        with self._lock:
            self._expire()
            return [p for p in self._by_uid.values() if p.node == node]

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._by_uid)

    def _expire(self) -> None:
        horizon = self.clock() - self.ttl
        while self._by_uid:
            oldest = next(iter(self._by_uid.values()))
            if oldest.at >= horizon and len(self._by_uid) <= self.max_entries:
                break
            self._by_uid.popitem(last=False)
