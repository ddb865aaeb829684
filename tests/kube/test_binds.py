"""BindHistory: in-flight placements per node from own binds and the pod cache, each pod once."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from msgspec import Raw

from extender.kube.binds import Bind, BindHistory, PodRequests
from extender.kube.stores import RecentPodStore
from extender.measured import NO_INFLIGHT
from tests.kube.fake_store import recorded_pods


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def history(clock: Clock, **kwargs: Any) -> BindHistory:
    return BindHistory(clock=clock, **kwargs)


def test_own_bind_carries_the_requests_seen_in_filter_and_counts_once_with_the_watch() -> None:
    clock = Clock()
    binds = history(clock)
    binds.requests.remember("u1", {"cpu": Decimal("0.5"), "memory": Decimal(2**30)})
    binds.record("u1", "default", "p1", "n1")
    binds.record("u1", "default", "p1", "n1")  # kube-scheduler retried the bind
    clock.now += 2
    binds.observe(Bind("u1", "n1", clock.now - 1, {"cpu": 0.5, "memory": 2.0**30}))  # the watch event
    inflight = binds.placed_since("n1", 0)
    assert inflight.count == 1 and inflight.request("cpu") == 0.5 and inflight.request("memory") == 2.0**30
    assert binds.get("u1") is not None and binds.get("u1").at == clock.now - 2  # type: ignore[union-attr]
    assert binds.placed_since("n2", 0) is NO_INFLIGHT


def test_a_pod_bound_elsewhere_seen_first_through_the_watch_then_deleted() -> None:
    clock = Clock()
    binds = history(clock)
    binds.observe(Bind("u2", "n1", clock.now - 5, {"cpu": 1.0}))
    binds.observe(Bind("u3", "n1", clock.now - 100, {"cpu": 2.0}))
    assert binds.placed_since("n1", clock.now - 10).request("cpu") == 1.0
    assert binds.placed_since("n1", 0).request("cpu") == 3.0
    binds.forget("u2")
    assert binds.placed_since("n1", clock.now - 10) is NO_INFLIGHT
    binds.forget("u3")
    assert binds.placed_since("n1", 0) is NO_INFLIGHT and len(binds) == 0


def test_binds_expire_after_the_retention_and_entries_are_bounded() -> None:
    clock = Clock()
    binds = history(clock, retention=60, max_entries=3)
    binds.observe(Bind("old", "n1", clock.now - 61))  # already outside the window: not kept
    assert len(binds) == 0
    for i in range(5):
        binds.observe(Bind(f"u{i}", "n1", clock.now, {"cpu": 1.0}))
    assert len(binds) == 3 and binds.placed_since("n1", 0).count == 3
    clock.now += 61
    assert binds.placed_since("n1", 0) is NO_INFLIGHT  # read past the retention: nothing
    binds.observe(Bind("new", "n2", clock.now))
    assert len(binds) == 1  # the old ones went on the next write


def test_a_relist_drops_pods_deleted_meanwhile_and_keeps_fresh_own_binds() -> None:
    clock = Clock()
    binds = history(clock)
    binds.observe(Bind("gone", "n1", clock.now - 5))
    binds.record("own-old", "default", "a", "n1")
    clock.now += 120
    binds.record("own-new", "default", "b", "n2")
    binds.replace_observed({"kept": Bind("kept", "n3", clock.now - 1), "ancient": Bind("ancient", "n3", 0.0)})
    assert {uid for uid in ("gone", "own-old", "own-new", "kept", "ancient") if binds.get(uid)} == {"own-new", "kept"}
    assert binds.placed_since("n3", 0).count == 1 and binds.placed_since("n1", 0) is NO_INFLIGHT


def test_pod_requests_are_a_small_lru() -> None:
    requests = PodRequests(max_entries=2)
    requests.remember("a", {"cpu": Decimal(1)})
    requests.remember("b", {"cpu": Decimal(2)})
    requests.remember("a", {"cpu": Decimal(1)})  # used again: now the newest
    requests.remember("c", {"cpu": Decimal(3)})
    assert requests.get("b") is None and requests.get("a") == {"cpu": 1.0} and len(requests) == 2


def _pod(uid: str, node: str, scheduled: str | None) -> Raw:
    pod: dict[str, Any] = json.loads(json.dumps(recorded_pods()[0]))
    pod["metadata"]["uid"] = uid
    pod["spec"]["nodeName"] = node
    pod["spec"]["containers"] = [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]
    pod["status"] = {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}]}
    if scheduled is None:
        pod["status"] = {}
    return Raw(json.dumps(pod).encode())


def test_pod_store_keeps_requests_of_recent_binds_only() -> None:
    now = time.time()
    binds = BindHistory()
    store = RecentPodStore(binds)
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
    items = dict(store.decode(raw) for raw in (_pod("r", "n1", recent), _pod("o", "n1", "2020-01-01T00:00:00Z")))
    assert items["r"] is not None and items["r"].requests == {"cpu": 0.25, "memory": 2.0**30}
    assert items["o"] is None  # bound long ago: not kept (a watch event of it deletes nothing)
    store.replace({k: v for k, v in items.items() if v is not None})
    assert len(store) == 1 and binds.placed_since("n1", now - 60).request("cpu") == 0.25
    store.delete("r")
    assert len(store) == 0 and binds.placed_since("n1", 0) is NO_INFLIGHT
    uid, unbound = store.decode(Raw(json.dumps({"metadata": {"uid": "x"}, "spec": {}}).encode()))
    assert (uid, unbound) == ("x", None)


def test_placed_since_is_a_dict_miss_when_nothing_is_in_flight() -> None:
    binds = BindHistory()
    binds.observe(Bind("u", "busy", time.time(), {"cpu": 1.0}))
    started = time.perf_counter()
    for _ in range(100_000):
        binds.placed_since("idle", 0)
    assert time.perf_counter() - started < 5  # a hang detector; measured ~0.1 us a call
