"""Reflector against the fake API server: list, watch, resume, relist, reconnect, converge."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from extender.kube.client import Backoff, KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.reflector import Reflector
from extender.kube.stores import NodeStore, PodStore
from tests.conftest import eventually
from tests.kube.fake_apiserver import FakeApiServer


def node_reflector(server: FakeApiServer, **kwargs: Any) -> tuple[Reflector[Any], NodeStore]:
    store = NodeStore()
    client = KubeClient(ClusterConfig(server=server.url, token_source=StaticToken("test-token")), timeout=5, retries=1)
    options: dict[str, Any] = {"page_size": 3, "watch_timeout": (2, 3), "backoff": Backoff(base=0.01, cap=0.05)}
    options.update(kwargs)
    return Reflector("nodes", client, "/api/v1/nodes", store=store, decode=NodeStore.decode, **options), store


def labels(store: NodeStore) -> dict[str, dict[str, str]]:
    return {name: dict(store.get(name).labels) for name in store.names()}  # type: ignore[union-attr]


def server_labels(server: FakeApiServer) -> dict[str, dict[str, str]]:
    return {name: node["metadata"].get("labels", {}) for name, node in server.nodes.items()}


@pytest.fixture
def running(apiserver: FakeApiServer) -> Iterator[tuple[Reflector[Any], NodeStore]]:
    reflector, store = node_reflector(apiserver)
    reflector.start()
    assert reflector.synced.wait(5)
    yield reflector, store
    reflector.stop()


def test_first_list_is_paginated_and_syncs(running: tuple[Reflector[Any], NodeStore], apiserver: FakeApiServer) -> None:
    reflector, store = running
    assert sorted(store.names()) == [f"node-0000{i}" for i in range(8)]
    assert reflector.status.synced and reflector.status.lists == 1
    assert reflector.status.resource_version == str(apiserver.resource_version)
    lists = [r for r in apiserver.requests if r.path == "/api/v1/nodes" and "watch" not in r.query]
    assert len(lists) == 3 and all(r.query["limit"] == "3" for r in lists)


def test_watch_applies_the_recorded_kinds_of_event(running: tuple[Reflector[Any], NodeStore], apiserver: FakeApiServer) -> None:
    _, store = running
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"example.com/maintenance": "planned"}))
    template = copy.deepcopy(apiserver.nodes["node-00000"])
    template["metadata"].update(name="node-00008", uid="674690b3-9bae-4e49-b37f-3af247463174")
    apiserver.add_node(template)
    eventually(lambda: store.get("node-00008") is not None)
    assert store.get("node-00001").labels["example.com/maintenance"] == "planned"  # type: ignore[union-attr]
    apiserver.delete_node("node-00008")
    eventually(lambda: store.get("node-00008") is None)


def test_a_watch_ended_by_the_server_resumes_from_the_last_bookmark(
    running: tuple[Reflector[Any], NodeStore], apiserver: FakeApiServer
) -> None:
    reflector, store = running
    apiserver.modify_node("node-00003", lambda n: n["metadata"]["labels"].update({"x": "1"}))
    apiserver.bookmark()
    bookmark = str(apiserver.resource_version)
    eventually(lambda: reflector.status.resource_version == bookmark)
    apiserver.end_watches()
    apiserver.modify_node("node-00004", lambda n: n["metadata"]["labels"].update({"x": "2"}))
    eventually(lambda: store.get("node-00004").labels.get("x") == "2")  # type: ignore[union-attr]
    watches = [r for r in apiserver.requests if r.query.get("watch") == "1"]
    assert watches[-1].query["resourceVersion"] == bookmark
    assert reflector.status.lists == 1, "resuming must not relist"


def test_an_expired_resource_version_relists_and_catches_up(
    running: tuple[Reflector[Any], NodeStore], apiserver: FakeApiServer
) -> None:
    reflector, store = running
    apiserver.drop_connections()
    apiserver.delete_node("node-00007")
    apiserver.modify_node("node-00000", lambda n: n["metadata"]["labels"].update({"late": "yes"}))
    apiserver.compact()
    eventually(lambda: reflector.status.lists >= 2)
    eventually(lambda: labels(store) == server_labels(apiserver))
    assert store.get("node-00007") is None


def test_a_continue_token_that_expires_mid_list_restarts_the_list(apiserver: FakeApiServer) -> None:
    reflector, store = node_reflector(apiserver)
    pages = reflector.client.list_pages("/api/v1/nodes", limit=3)
    next(pages)
    apiserver.compact()
    apiserver.add_synthetic_nodes(2)
    reflector.start()
    try:
        assert reflector.synced.wait(5)
        assert len(store) == 10
    finally:
        reflector.stop()


def test_errors_back_off_and_recover(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("GET", "/api/v1/nodes", 500, times=3)
    reflector, store = node_reflector(apiserver)
    reflector.start()
    try:
        assert reflector.synced.wait(5)
        assert len(store) == 8
    finally:
        reflector.stop()


def test_periodic_resync_relists(apiserver: FakeApiServer) -> None:
    reflector, _ = node_reflector(apiserver, resync_period=0.2, watch_timeout=(1, 1))
    reflector.start()
    try:
        eventually(lambda: reflector.status.lists >= 3, timeout=8)
    finally:
        reflector.stop()


def test_pod_cache_keeps_bound_pods_indexed_by_node(apiserver: FakeApiServer) -> None:
    store = PodStore()
    client = KubeClient(ClusterConfig(server=apiserver.url, token_source=StaticToken("test-token")))
    reflector: Reflector[Any] = Reflector(
        "pods", client, "/api/v1/pods", store=store, decode=PodStore.decode,
        params={"fieldSelector": "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"},
        watch_timeout=(2, 3), backoff=Backoff(base=0.01, cap=0.05),
    )
    reflector.start()
    try:
        assert reflector.synced.wait(5)
        assert [p.name for p in store.on_node("node-00003")] == ["bindme"]
        assert [p.name for p in store.on_node("node-00005")] == ["plain-1"]
        assert store.get("749a37f9-f505-422b-9ac2-d80ad3a25410") is None  # gpu-1 is not bound
        apiserver.modify_pod("default", "gpu-1", lambda p: p["spec"].update(nodeName="node-00006"))
        eventually(lambda: [p.name for p in store.on_node("node-00006")] == ["gpu-1"])
        apiserver.delete_pod("default", "bindme")
        eventually(lambda: store.on_node("node-00003") == [])
    finally:
        reflector.stop()


class CacheConvergence(RuleBasedStateMachine):
    """Any interleaving of changes, bookmarks, stream ends, drops, compactions and errors:
    once the server is quiet, the cache equals the server's state."""

    def __init__(self) -> None:
        super().__init__()
        self.server = FakeApiServer().__enter__()
        self.reflector, self.store = node_reflector(self.server)
        self.counter = 0

    @initialize()
    def start(self) -> None:
        self.reflector.start()
        assert self.reflector.synced.wait(5)

    @rule(value=st.sampled_from(["a", "b", "c"]), index=st.integers(0, 20))
    def relabel(self, value: str, index: int) -> None:
        names = sorted(self.server.nodes)
        if names:
            name = names[index % len(names)]
            self.server.modify_node(name, lambda n: n["metadata"].setdefault("labels", {}).update({"state": value}))

    @rule()
    def add(self) -> None:
        self.counter += 1
        node = copy.deepcopy(self.server.nodes.get("node-00000") or next(iter(self.server.nodes.values())))
        node["metadata"].update(name=f"extra-{self.counter}", uid=f"uid-{self.counter}")
        self.server.add_node(node)

    @rule(index=st.integers(0, 20))
    def delete(self, index: int) -> None:
        names = sorted(self.server.nodes)
        if len(names) > 1:
            self.server.delete_node(names[index % len(names)])

    @rule()
    def bookmark(self) -> None:
        self.server.bookmark()

    @rule()
    def end_watches(self) -> None:
        self.server.end_watches()

    @rule()
    def drop(self) -> None:
        self.server.drop_connections()

    @rule()
    def compact(self) -> None:
        self.server.compact()

    @rule()
    def fail_some(self) -> None:
        self.server.fail_next("GET", "/api/v1/nodes", 500, times=2)

    @invariant()
    def store_never_holds_garbage(self) -> None:
        for name in self.store.names():
            assert self.store.get(name) is not None

    def teardown(self) -> None:
        try:
            eventually(lambda: labels(self.store) == server_labels(self.server), timeout=10)
        finally:
            self.reflector.stop()
            self.server.__exit__(None, None, None)


CacheConvergence.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)
test_cache_converges_after_any_sequence = CacheConvergence.TestCase
