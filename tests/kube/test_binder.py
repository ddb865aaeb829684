"""Binding through the fake API server: success, idempotent retries, conflicts, deadline, and
every way the API server can refuse a bind, each a short error kube-scheduler can show."""

from __future__ import annotations

import time

import pytest

from extender.kube.binder import BindError, KubeBinder
from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.placements import RecentPlacements
from tests.kube.fake_apiserver import TOO_MANY_REQUESTS_TEXT, FakeApiServer
from tests.test_server import free_port

GPU_UID = "749a37f9-f505-422b-9ac2-d80ad3a25410"
BINDING = "/api/v1/namespaces/default/pods/gpu-1/binding"
#: kube-apiserver's RBAC denial for a ServiceAccount without the bind component's ClusterRole
RBAC_DENIAL = {
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'pods "gpu-1" is forbidden: User "system:serviceaccount:extender-system:extender" cannot create '
    'resource "pods/binding" in API group "" in the namespace "default"',
    "details": {"name": "gpu-1", "kind": "pods"},
}  # fmt: skip


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


def bind_error(server: FakeApiServer, *, timeout: float = 3.0, uid: str = GPU_UID, pod: str = "gpu-1") -> str:
    """The message of the BindError that binding ``pod`` to node-00002 raises."""
    with pytest.raises(BindError) as err:
        binder_for(server, timeout=timeout).bind("default", pod, uid, "node-00002")
    return str(err.value)


def test_forbidden_names_the_missing_permission(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", BINDING, 403, body=RBAC_DENIAL)
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: forbidden (403), the extender needs create on "
        'pods/binding: pods "gpu-1" is forbidden: User "system:serviceaccount:extender-system:extender" '
        'cannot create resource "pods/binding" in API group "" in the namespace "default"'
    )
    assert [r.method for r in apiserver.requests] == ["POST"], "a 403 is not retried"


def test_unauthorized_says_the_credentials_were_rejected(apiserver: FakeApiServer) -> None:
    apiserver.token = "rotated-elsewhere"
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: the API server rejected the extender's credentials "
        "(401 Unauthorized)"
    )


def test_invalid_is_reported_with_the_servers_reason(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", BINDING, 422)
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: the API server rejected the binding as invalid (422): "
        'Binding "gpu-1" is invalid: target.name: Invalid value: "node_1": a lowercase RFC 1123 subdomain'
    )


def test_server_errors_are_retried_then_reported(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", BINDING, 500, times=20)
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: the API server failed (500): "
        "Internal error occurred: injected by the fake apiserver"
    )
    assert len([r for r in apiserver.requests if r.method == "POST"]) > 1, "5xx is retried within the deadline"
    assert "nodeName" not in apiserver.pods[("default", "gpu-1")]["spec"]


def test_throttling_within_the_deadline_is_waited_out(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", BINDING, 429, retry_after=1, body=TOO_MANY_REQUESTS_TEXT)
    binder_for(apiserver, timeout=3.0).bind("default", "gpu-1", GPU_UID, "node-00002")
    assert apiserver.pods[("default", "gpu-1")]["spec"]["nodeName"] == "node-00002"


def test_throttling_past_the_deadline_fails_at_once_with_retry_after(apiserver: FakeApiServer) -> None:
    # Retry-After 30 s does not fit a 3 s bind: answer now, kube-scheduler retries the pod.
    apiserver.fail_next("POST", BINDING, 429, retry_after=30, body=TOO_MANY_REQUESTS_TEXT)
    started = time.monotonic()
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: throttled by the API server "
        "(429 Too Many Requests, retry after 30s)"
    )
    assert time.monotonic() - started < 20, "it does not sleep through a Retry-After it cannot use"


def test_an_unreachable_api_server_is_reported_in_a_few_words() -> None:
    port = free_port()  # nothing listens there
    client = KubeClient(ClusterConfig(server=f"http://127.0.0.1:{port}", token_source=StaticToken("test-token")))
    with pytest.raises(BindError) as err:
        KubeBinder(client, timeout=1.0).bind("default", "gpu-1", GPU_UID, "node-00002")
    assert str(err.value) == (
        f"binding pod default/gpu-1 to node node-00002: the API server is unreachable "
        f"(cannot reach http://127.0.0.1:{port}: connection refused)"
    )


def test_a_slow_api_server_is_reported_as_a_timeout_and_a_late_bind_is_then_a_success(
    apiserver: FakeApiServer,
) -> None:
    # The API server would hang for 30 s per attempt: the binder must give up at its own
    # deadline (0.5 s), far sooner (the bound is a behaviour with a 20x margin, not a speed).
    apiserver.delay_next(BINDING, 30.0, times=5)
    started = time.monotonic()
    assert bind_error(apiserver, timeout=0.5) == (
        "binding pod default/gpu-1 to node node-00002: no answer from the API server within the bind timeout "
        "(0.5s); it may still bind"
    )
    assert time.monotonic() - started < 10
    apiserver.clear_delays()  # the delayed POSTs go through now: the pod gets bound after all
    binder_for(apiserver).bind("default", "gpu-1", GPU_UID, "node-00002")  # kube-scheduler's retry: a 409, same node
    assert apiserver.pods[("default", "gpu-1")]["spec"]["nodeName"] == "node-00002"


def test_a_pod_being_deleted_is_reported_as_the_server_says(apiserver: FakeApiServer) -> None:
    apiserver.modify_pod("default", "gpu-1", lambda p: p["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert bind_error(apiserver) == (
        "binding pod default/gpu-1 to node node-00002: Operation cannot be fulfilled on pods/binding "
        '"gpu-1": pod gpu-1 is being deleted, cannot be assigned to a host'
    )


def test_a_pod_deleted_between_the_conflict_and_the_read_back_is_reported(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", BINDING, 409)
    apiserver.delete_pod("default", "gpu-1")
    assert bind_error(apiserver) == "pod default/gpu-1 not found: it was deleted before it could be bound"


def test_every_rejection_is_one_short_line(apiserver: FakeApiServer) -> None:
    long_message = {**RBAC_DENIAL, "message": "x" * 5000 + "\n" + "y" * 100}
    apiserver.fail_next("POST", BINDING, 403, body=long_message)
    message = bind_error(apiserver)
    assert "\n" not in message and len(message) < 400
