"""PodStore's node index and RecentPlacements' expiry."""

from __future__ import annotations

from extender.kube.placements import RecentPlacements
from extender.kube.stores import PodStore
from extender.view import BoundPod


def pod(uid: str, node: str) -> BoundPod:
    return BoundPod(uid=uid, namespace="default", name=f"p-{uid}", node_name=node, requests={})


def test_pod_store_index_follows_moves_and_deletes() -> None:
    store = PodStore()
    store.replace({"a": pod("a", "n1"), "b": pod("b", "n1"), "c": pod("c", "n2")})
    assert sorted(p.uid for p in store.on_node("n1")) == ["a", "b"]
    store.upsert("a", pod("a", "n2"))
    assert [p.uid for p in store.on_node("n1")] == ["b"]
    assert sorted(p.uid for p in store.on_node("n2")) == ["a", "c"]
    store.delete("b")
    store.delete("missing")
    assert store.on_node("n1") == [] and len(store) == 2


def test_placements_expire_and_count_a_retried_bind_once() -> None:
    now = [0.0]
    placements = RecentPlacements(ttl=10, max_entries=3, clock=lambda: now[0])
    placements.record("u1", "default", "p1", "n1")
    placements.record("u1", "default", "p1", "n1")
    placements.record("u2", "default", "p2", "n1")
    assert [p.uid for p in placements.on_node("n1")] == ["u1", "u2"]
    now[0] = 10.5
    placements.record("u3", "default", "p3", "n2")
    assert [p.uid for p in placements.on_node("n1")] == []
    for i in range(5):
        placements.record(f"v{i}", "default", "p", "n3")
    assert len(placements) == 3
    placements.forget("v4")
    assert [p.uid for p in placements.on_node("n3")] == ["v2", "v3"]


def test_pods_seen_bound_are_no_longer_tracked_as_recent_placements() -> None:
    placements = RecentPlacements()
    placements.record("a", "default", "p-a", "n1")
    placements.record("b", "default", "p-b", "n1")
    store = PodStore(on_bound=placements.forget)
    store.upsert("a", pod("a", "n1"))
    assert [p.uid for p in placements.on_node("n1")] == ["b"]
    store.replace({"b": pod("b", "n1")})
    assert placements.on_node("n1") == []
