"""Binding through the fake API server: success, idempotent retries, conflicts, deadline."""

from __future__ import annotations

import time

import pytest

from extender.kube.binder import BindError, KubeBinder
from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.placements import RecentPlacements
from tests.kube.fake_apiserver import FakeApiServer

GPU_UID = "749a37f9-f505-422b-9ac2-d80ad3a25410"


def binder_for(server: FakeApiServer, timeout: float = 3.0) -> KubeBinder:
    client = KubeClient(ClusterConfig(server=server.url, token_source=StaticToken("test-token")))
    return KubeBinder(client, timeout=timeout, placements=RecentPlacements())


def test_bind_creates_the_binding_with_the_uid_precondition(apiserver: FakeApiServer) -> None:
    binder = binder_for(apiserver)
    binder.bind("default", "gpu-1", GPU_UID, "node-00002")
    assert apiserver.pods[("default", "gpu-1")]["spec"]["nodeName"] == "node-00002"
    request = apiserver.requests[-1]
    assert (request.method, request.path) == ("POST", "/api/v1/namespaces/default/pods/gpu-1/binding")
    assert b'"uid":"%s"' % GPU_UID.encode() in request.body
    assert [p.node for p in binder.placements.on_node("node-00002")] == ["node-00002"]  # type: ignore[union-attr]


def test_a_retried_bind_after_a_lost_reply_succeeds(apiserver: FakeApiServer) -> None:
    binder = binder_for(apiserver)
    binder.bind("default", "gpu-1", GPU_UID, "node-00002")
    binder.bind("default", "gpu-1", GPU_UID, "node-00002")  # the API server answers 409 this time
    assert [r.method for r in apiserver.requests[-2:]] == ["POST", "GET"]


def test_a_transient_error_is_retried_within_the_deadline(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", "/api/v1/namespaces/default/pods/gpu-1/binding", 503)
    binder_for(apiserver).bind("default", "gpu-1", GPU_UID, "node-00002")
    assert apiserver.pods[("default", "gpu-1")]["spec"]["nodeName"] == "node-00002"


def test_already_bound_elsewhere_is_an_error(apiserver: FakeApiServer) -> None:
    with pytest.raises(BindError, match="pod default/bindme is already bound to node node-00003, not node-00001"):
        binder_for(apiserver).bind("default", "bindme", "dc57dcfe-4ca3-4f46-9569-11dd8334ccd7", "node-00001")


def test_a_replaced_pod_is_not_bound(apiserver: FakeApiServer) -> None:
    with pytest.raises(BindError, match="was replaced"):
        binder_for(apiserver).bind("default", "gpu-1", "00000000-old-uid", "node-00002")
    assert "nodeName" not in apiserver.pods[("default", "gpu-1")]["spec"]


def test_a_deleted_pod_is_reported(apiserver: FakeApiServer) -> None:
    with pytest.raises(BindError, match="pod default/nosuchpod not found"):
        binder_for(apiserver).bind("default", "nosuchpod", "u", "node-00001")


def test_bind_gives_up_within_its_timeout(apiserver: FakeApiServer) -> None:
    # The API server would hang for 30 s per attempt: the binder must give up at its own
    # deadline (0.5 s), far sooner (the bound is a behaviour with a 20x margin, not a speed).
    apiserver.delay_next("/api/v1/namespaces/default/pods/gpu-1/binding", 30.0, times=5)
    started = time.monotonic()
    with pytest.raises(BindError, match="failed"):
        binder_for(apiserver, timeout=0.5).bind("default", "gpu-1", GPU_UID, "node-00002")
    assert time.monotonic() - started < 10
