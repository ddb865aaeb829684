"""Pods bound per node in the last minutes: the in-flight half of measured load.

A node's metric sample lags its pods: a pod bound after the sample was taken is not in it.
Load-aware rules add the requests of those pods (``ctx.load.placed_since(node, sample
time)``), read from here. Two feeds, each pod counted once (by UID):

* the pod cache (a watch on bound pods): every replica sees every bind, its own and the
  other replicas', with the API server's bind time (the PodScheduled condition's
  ``lastTransitionTime``, whole seconds);
* this replica's own binds, recorded by the binder the moment the API server accepts
  them, so the next request sees them before the watch event arrives. The Binding carries
  no requests: the service remembers them by UID from the pod of filter/prioritize
  (:class:`PodRequests`).

Without a pod cache only the second feed runs: each replica then counts its own binds
only and does not see the other replicas' placements.

Bounded: entries older than ``retention`` seconds expire (it must cover the longest
``maxAge`` of a load rule plus the metric pipeline's lag, or a pod could drop out of the
in-flight count before the metrics show it), and at most ``max_entries`` are kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType

import msgspec

from extender.measured import NO_INFLIGHT, InFlight

#: seconds of binds kept by default: 15 min covers a 5 min maxAge plus minutes of lag
DEFAULT_RETENTION = 900.0
#: entries kept at most by default (a 100 binds/s burst for the whole retention is 90k)
DEFAULT_MAX_ENTRIES = 100_000
#: a relist does not drop an own bind younger than this: the list may predate it
_OWN_BIND_GRACE = 60.0

_NO_REQUESTS: Mapping[str, float] = MappingProxyType({})


class Bind(msgspec.Struct, frozen=True, gc=False):
    """One pod bound to a node: when (POSIX seconds) and its requests (cores, bytes, ...)."""

    uid: str
    node: str
    at: float
    requests: Mapping[str, float] = _NO_REQUESTS
    #: recorded by this replica's binder (not yet, or also, seen through the pod cache)
    own: bool = False


def float_requests(requests: Mapping[str, Decimal]) -> Mapping[str, float]:
    """A pod's requests as floats in base units (what :class:`InFlight` sums)."""
    return MappingProxyType({name: float(value) for name, value in requests.items()})


class PodRequests:
    """The requests of the pods this replica was asked about recently, by UID.

    A bind request names only the pod; its requests come from the filter or prioritize
    call that preceded it. Small and LRU: kube-scheduler binds a pod within seconds of
    scoring it.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._by_uid: OrderedDict[str, Mapping[str, float]] = OrderedDict()

    def remember(self, uid: str, requests: Mapping[str, Decimal]) -> None:
        if not uid:
            return
        with self._lock:
            if uid in self._by_uid:
                self._by_uid.move_to_end(uid)
                return
        converted = float_requests(requests)
        with self._lock:
            self._by_uid[uid] = converted
            while len(self._by_uid) > self.max_entries:
                self._by_uid.popitem(last=False)

    def get(self, uid: str) -> Mapping[str, float] | None:
        return self._by_uid.get(uid)

    def __len__(self) -> int:
        return len(self._by_uid)


class BindHistory:
    """Recent binds by node; implements ``PlacementReader`` (``placed_since``).

    Writers (the pod reflector's thread, request threads binding) take a lock; readers do
    not: each node's binds are an immutable tuple replaced on write, so ``placed_since``
    is a dict lookup, and a miss (nothing in flight) costs nothing more.
    """

    def __init__(
        self,
        retention: float = DEFAULT_RETENTION,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        requests: PodRequests | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention = retention
        self.max_entries = max_entries
        self.requests = requests if requests is not None else PodRequests()
        self.clock = clock
        self._lock = threading.Lock()
        #: in the order recorded (roughly bind time): expiry pops from the front
        self._by_uid: dict[str, Bind] = {}
        self._by_node: dict[str, tuple[Bind, ...]] = {}

    # -- reading ----------------------------------------------------------------------------

    def placed_since(self, node: str, since: float) -> InFlight:
        """Pods bound to ``node`` at or after POSIX time ``since`` (at most ``retention`` ago)."""
        binds = self._by_node.get(node)
        if binds is None:
            return NO_INFLIGHT
        since = max(since, self.clock() - self.retention)
        count = 0
        totals: dict[str, float] = {}
        for bind in binds:
            if bind.at >= since:
                count += 1
                for name, value in bind.requests.items():
                    totals[name] = totals.get(name, 0.0) + value
        return InFlight(count, MappingProxyType(totals)) if count else NO_INFLIGHT

    def is_recent(self, at: float) -> bool:
        """Whether a bind at POSIX time ``at`` is within the retention window."""
        return at >= self.clock() - self.retention

    def get(self, uid: str) -> Bind | None:
        return self._by_uid.get(uid)

    def __len__(self) -> int:
        return len(self._by_uid)

    # -- writing ----------------------------------------------------------------------------

    def record(self, uid: str, namespace: str, name: str, node: str) -> None:
        """The binder bound ``uid`` to ``node`` just now (``KubeBinder``'s recorder)."""
        with self._lock:
            existing = self._by_uid.get(uid)
            if existing is not None and existing.node == node:
                return  # a retried bind, or the watch was faster: already counted
            self._put(Bind(uid, node, self.clock(), self.requests.get(uid) or _NO_REQUESTS, own=True))

    def observe(self, bind: Bind) -> None:
        """The pod cache saw ``bind.uid`` bound (ADDED or MODIFIED)."""
        with self._lock:
            existing = self._by_uid.get(bind.uid)
            if existing is not None and existing.node == bind.node:
                if existing.requests or not bind.requests:
                    return  # counted once: keep the first record (an own bind's exact time)
                bind = Bind(bind.uid, bind.node, existing.at, bind.requests, existing.own)
            if bind.at < self.clock() - self.retention:
                if existing is not None:
                    self._remove(bind.uid)
                return
            self._put(bind)

    def forget(self, uid: str) -> None:
        """The pod is gone (deleted, finished, replaced)."""
        with self._lock:
            self._remove(uid)

    def replace_observed(self, binds: Mapping[str, Bind]) -> None:
        """A relist: the pod cache's binds are exactly ``binds`` (only recent ones are kept).

        Pods missing from the list were deleted while the watch was down. An own bind
        missing from it is kept for a minute: the list may be older than the bind.
        """
        now = self.clock()
        horizon = now - self.retention
        with self._lock:
            kept = {
                uid: b for uid, b in self._by_uid.items() if b.own and uid not in binds and b.at >= now - _OWN_BIND_GRACE
            }
            for uid, bind in binds.items():
                if bind.at < horizon:
                    continue
                existing = self._by_uid.get(uid)
                if existing is not None and existing.node == bind.node and existing.own:
                    bind = Bind(uid, bind.node, existing.at, bind.requests or existing.requests, True)
                kept[uid] = bind
            ordered = sorted(kept.values(), key=lambda b: b.at)[-self.max_entries :]
            self._by_uid = {b.uid: b for b in ordered}
            by_node: dict[str, list[Bind]] = {}
            for b in ordered:
                by_node.setdefault(b.node, []).append(b)
            self._by_node = {node: tuple(entries) for node, entries in by_node.items()}

    def _put(self, bind: Bind) -> None:
        """Add or replace ``bind`` (lock held), then expire from the oldest end."""
        self._remove(bind.uid)
        self._by_uid[bind.uid] = bind
        self._by_node[bind.node] = (*self._by_node.get(bind.node, ()), bind)
        horizon = self.clock() - self.retention
        while self._by_uid:
            oldest = next(iter(self._by_uid.values()))
            if oldest.at >= horizon and len(self._by_uid) <= self.max_entries:
                break
            self._remove(oldest.uid)

    def _remove(self, uid: str) -> None:
        old = self._by_uid.pop(uid, None)
        if old is None:
            return
        remaining = tuple(b for b in self._by_node.get(old.node, ()) if b.uid != uid)
        if remaining:
            self._by_node[old.node] = remaining
        else:
            self._by_node.pop(old.node, None)
