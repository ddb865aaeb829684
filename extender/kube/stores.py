"""In-memory stores the reflectors fill: nodes by name; bound pods (the recent ones in full)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from msgspec import Raw

from extender.codec import kube_api, objects
from extender.kube.binds import Bind, BindHistory, float_requests
from extender.view import BoundPod, NodeView


class NodeStore:
    """Node views by name. Readers (request threads) never block: a relist swaps the whole
    dict in one assignment, and single updates are single dict operations."""

    def __init__(self, is_synced: Callable[[], bool] = lambda: True) -> None:
        self._nodes: dict[str, NodeView] = {}
        self._is_synced = is_synced
        #: told each change after it is applied: the node's name, None after a relist
        self._listeners: list[Callable[[str | None], None]] = []

    def subscribe(self, listener: Callable[[str | None], None]) -> None:
        """Tell ``listener`` of every change from now on, after it is applied (a verdict
        computed from a view read before then can so be told apart: see engine/named.py)."""
        # Copied, not changed in place: the watch thread may be iterating the old list.
        self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: Callable[[str | None], None]) -> None:
        """Stop telling ``listener`` (a service a policy reload replaced)."""
        self._listeners = [known for known in self._listeners if known != listener]

    def _changed(self, name: str | None) -> None:
        for listener in self._listeners:
            listener(name)

    def get(self, name: str) -> NodeView | None:
        return self._nodes.get(name)

    def get_many(self, names: Sequence[str]) -> list[NodeView | None]:
        """``get`` for each name, in one call (names-mode requests carry thousands)."""
        nodes = self._nodes
        return [nodes.get(name) for name in names]

    @property
    def ready(self) -> bool:
        """True once the first list has completed."""
        return self._is_synced()

    def names(self) -> list[str]:
        return list(self._nodes)

    def replace(self, items: dict[str, NodeView]) -> None:
        self._nodes = items
        self._changed(None)

    def upsert(self, key: str, item: NodeView) -> None:
        self._nodes[key] = item
        self._changed(key)

    def delete(self, key: str) -> None:
        self._nodes.pop(key, None)
        self._changed(key)

    def __len__(self) -> int:
        return len(self._nodes)

    @staticmethod
    def decode(raw: Raw) -> tuple[str, NodeView | None]:
        view = objects.decode_node(raw, compact=True)
        return view.name, view


class PodStore:
    """Bound pods by UID, indexed by node name (for rules that account for recent placements)."""

    def __init__(self, on_bound: Callable[[str], None] = lambda uid: None) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, BoundPod] = {}
        self._by_node: dict[str, dict[str, BoundPod]] = {}
        #: told each UID the cache sees bound (RecentPlacements stops tracking it)
        self._on_bound = on_bound

    def on_node(self, node: str) -> list[BoundPod]:
        with self._lock:
            return list(self._by_node.get(node, {}).values())

    def get(self, uid: str) -> BoundPod | None:
        return self._pods.get(uid)

    def replace(self, items: dict[str, BoundPod]) -> None:
        by_node: dict[str, dict[str, BoundPod]] = {}
        for uid, pod in items.items():
            by_node.setdefault(pod.node_name, {})[uid] = pod
        with self._lock:
            self._pods, self._by_node = items, by_node
        for uid in items:
            self._on_bound(uid)

    def upsert(self, key: str, item: BoundPod) -> None:
        with self._lock:
            self._remove(key)
            self._pods[key] = item
            self._by_node.setdefault(item.node_name, {})[key] = item
        self._on_bound(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def _remove(self, key: str) -> None:
        old = self._pods.pop(key, None)
        if old is not None:
            on_node = self._by_node.get(old.node_name)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._by_node[old.node_name]

    def __len__(self) -> int:
        return len(self._pods)

    @staticmethod
    def decode(raw: Raw) -> tuple[str, BoundPod | None]:
        pod = kube_api.decode_bound_pod(raw)
        if pod is None:  # unbound (or the object could not be read for its UID): drop it
            uid = kube_api.decode_pod_placement(raw)[0]
            return uid, None
        return pod.uid, pod


class RecentPodStore:
    """The pod cache as in-flight accounting needs it: the pods bound within the
    :class:`BindHistory`'s retention window (node, bind time, requests), and nothing of
    the rest.

    A pod bound long ago is read for its UID, node and PodScheduled time only and then
    dropped (decoded as None: the list skips it, a watch event of it is a no-op delete).
    At 150k pods this holds a few MiB instead of :class:`PodStore`'s full record per pod
    (benchmarks/caches.py; README "Caches at scale"). Its size is the number of binds in the window.
    """

    def __init__(self, history: BindHistory) -> None:
        self.history = history

    def decode(self, raw: Raw) -> tuple[str, Bind | None]:
        placement = kube_api.decode_pod_bind_time(raw)
        if not placement.node_name:
            return placement.uid, None
        at = placement.bound_at.timestamp() if placement.bound_at is not None else 0.0
        if not self.history.is_recent(at):
            return placement.uid, None
        pod = kube_api.decode_bound_pod(raw)
        requests = float_requests(pod.requests) if pod is not None else {}
        return placement.uid, Bind(placement.uid, placement.node_name, at, requests)

    def replace(self, items: dict[str, Bind]) -> None:
        self.history.replace_observed(items)

    def upsert(self, key: str, item: Bind) -> None:
        self.history.observe(item)

    def delete(self, key: str) -> None:
        self.history.forget(key)

    def __len__(self) -> int:
        return len(self.history)
