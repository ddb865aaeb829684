"""The newest Node objects this worker has seen in full-node requests, for preempt.

kube-scheduler's full-node preempt requests carry victims but no Node objects. Without a
node cache, the only views of the candidates the extender can have are the ones earlier
filter and prioritize requests (or an API lookup) carried: this store keeps the newest of
each, bounded, so preempt can check a candidate against the policy instead of guessing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from extender.view import NodeView

#: enough for the largest cluster Kubernetes supports (5000 nodes), so the LRU bound only
#: sheds churn (names of deleted nodes), never a live node
DEFAULT_CAPACITY = 5000


def is_newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion ``candidate`` should replace ``current``.

    resourceVersions are opaque strings in the API, but etcd's are increasing integers:
    compare numerically when both are; otherwise the one seen last wins. Equal versions
    are the same object, so the one already held stays.
    """
    if candidate == current:
        return False
    if candidate.isascii() and candidate.isdigit() and current.isascii() and current.isdigit():
        return int(candidate) > int(current)
    return True


class SeenNodes:
    """Node views by name, newest resourceVersion first, least recently seen evicted first.

    ``record`` is on the request path of every full-node filter and prioritize, so it does
    one dict lookup and one reorder per node and keeps the view it already has when the
    version is unchanged (the common case: most nodes do not change between requests).
    Readers (``get``) take no lock: single OrderedDict operations are atomic under the GIL.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 0:
            raise ValueError(f"capacity {capacity}: must be >= 0")
        self.capacity = capacity
        self._nodes: OrderedDict[str, NodeView] = OrderedDict()
        #: when each held node was last seen (at its held version or an older one)
        self._seen_at: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, views: Iterable[NodeView]) -> None:
        """Remember these views: each node counts as just seen; a newer version replaces the held one."""
        if self.capacity == 0:
            return
        nodes, seen_at, now = self._nodes, self._seen_at, self._clock()
        with self._lock:
            for view in views:
                name = view.name
                seen_at[name] = now
                held = nodes.get(name)
                if held is None:
                    nodes[name] = view
                    continue
                if is_newer(view.resource_version, held.resource_version):
                    nodes[name] = view
                # Seen again, even at an older version (a lagging scheduler cache): the node
                # still exists, so it is not what the bound should evict.
                nodes.move_to_end(name)
            while len(nodes) > self.capacity:
                name, _ = nodes.popitem(last=False)
                seen_at.pop(name, None)

    def get(self, name: str) -> NodeView | None:
        """The newest view seen of node ``name``, or None; does not count as seeing it."""
        return self._nodes.get(name)

    def age(self, name: str) -> float:
        """Seconds since node ``name`` was last seen (infinite if it is not held). A full node
        drops out of filter requests, so its view can be old: changes since are not in it."""
        seen = self._seen_at.get(name)
        return self._clock() - seen if seen is not None else float("inf")

    def get_many(self, names: Sequence[str]) -> list[NodeView | None]:
        """``get`` for each name."""
        nodes = self._nodes
        return [nodes.get(name) for name in names]

    def names(self) -> list[str]:
        """Held node names, least recently seen first."""
        with self._lock:
            return list(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)
