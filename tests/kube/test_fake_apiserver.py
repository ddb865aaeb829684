"""The fake kube-apiserver answers like the recorded real one (kube-apiserver v1.24).

Every recorded response is reproduced (parsed-JSON equal; the watch stream byte for byte),
and the behaviour the recordings do not show follows the real server's code paths.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from .fake_apiserver import FakeApiServer
from .fake_store import INCONSISTENT_CONTINUE, RECORDINGS, encode_continue, recording
from .tls import TlsFiles

AUTH = {"Authorization": "Bearer test-token"}
WATCH_LINES = (RECORDINGS / "nodes-watch.jsonl").read_bytes().splitlines()


def get(server: FakeApiServer, path: str, headers: Mapping[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(server.url + path, params=params, headers=AUTH if headers is None else headers, timeout=10)


def cont(token: str) -> dict[str, Any]:
    """The ``continue`` parameter (a Python keyword), if any."""
    return {"continue": token} if token else {}


def watch(server: FakeApiServer, path: str, **params: Any) -> requests.Response:
    query: dict[str, Any] = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": 10, **params}
    response = requests.get(server.url + path, params=query, headers=AUTH, stream=True, timeout=10)
    assert response.status_code == 200
    return response


def events(response: requests.Response) -> list[dict[str, Any]]:
    """Read a watch stream to its end."""
    return [json.loads(line) for line in response.iter_lines() if line]


def decode_token(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return decoded


@pytest.fixture
def pods_server() -> Iterator[FakeApiServer]:
    """At revision 513, where the pod lists were recorded."""
    with FakeApiServer(initial_rv=513) as server:
        yield server


# -- node lists ------------------------------------------------------------------------------


def test_node_list_pages_equal_the_recording(apiserver: FakeApiServer) -> None:
    page1 = get(apiserver, "/api/v1/nodes", limit=3)
    assert page1.status_code == 200
    assert page1.headers["Content-Type"] == "application/json"
    assert int(page1.headers["Content-Length"]) == len(page1.content)
    assert page1.json() == recording("nodes-list-page1.json")
    page2 = get(apiserver, "/api/v1/nodes", limit=3, **cont(page1.json()["metadata"]["continue"]))
    assert page2.json() == recording("nodes-list-page2.json")


def test_continue_tokens_are_the_recorded_format() -> None:
    for name, last in (("nodes-list-page1.json", "node-00002"), ("nodes-list-page2.json", "node-00005")):
        token = recording(name)["metadata"]["continue"]
        assert decode_token(token) == {"v": "meta.k8s.io/v1", "rv": 502, "start": last + "\x00"}
        assert "=" not in token
        assert encode_continue(f"/registry/minions/{last}\x00", "/registry/minions/", 502) == token


def test_following_continue_lists_every_node_once(apiserver: FakeApiServer) -> None:
    names, remaining, token = [], [], ""
    while True:
        meta, items = (page := get(apiserver, "/api/v1/nodes", limit=3, **cont(token)).json())["metadata"], page["items"]
        assert meta["resourceVersion"] == "502"
        names += [item["metadata"]["name"] for item in items]
        remaining.append(meta.get("remainingItemCount"))
        token = meta.get("continue", "")
        if not token:
            break
    assert names == [f"node-{i:05d}" for i in range(8)]
    assert remaining == [5, 2, None]
    assert "continue" not in meta


def test_continue_reads_the_snapshot_of_the_first_page(apiserver: FakeApiServer) -> None:
    token = get(apiserver, "/api/v1/nodes", limit=3).json()["metadata"]["continue"]
    apiserver.modify_node("node-00003", lambda n: n["metadata"]["labels"].update({"changed": "yes"}))
    apiserver.delete_node("node-00004")
    assert get(apiserver, "/api/v1/nodes", limit=3, **cont(token)).json() == recording("nodes-list-page2.json")
    latest = get(apiserver, "/api/v1/nodes").json()
    assert latest["metadata"]["resourceVersion"] == "504"
    assert [n["metadata"]["name"] for n in latest["items"]] == [f"node-{i:05d}" for i in range(8) if i != 4]


def test_an_expired_continue_token_is_410_with_a_token_for_the_rest(apiserver: FakeApiServer) -> None:
    token = get(apiserver, "/api/v1/nodes", limit=3).json()["metadata"]["continue"]
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"changed": "yes"}))
    apiserver.compact()
    expired = get(apiserver, "/api/v1/nodes", limit=3, **cont(token))
    assert expired.status_code == 410
    body = expired.json()
    new_token = body["metadata"].pop("continue")
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": INCONSISTENT_CONTINUE, "reason": "Expired", "code": 410,
    }  # fmt: skip
    assert decode_token(new_token) == {"v": "meta.k8s.io/v1", "rv": -1, "start": "node-00002\x00"}
    rest = get(apiserver, "/api/v1/nodes", limit=10, **cont(new_token)).json()
    assert rest["metadata"]["resourceVersion"] == "503"
    assert [n["metadata"]["name"] for n in rest["items"]] == [f"node-{i:05d}" for i in range(3, 8)]


def test_list_errors_are_the_real_status_errors(apiserver: FakeApiServer) -> None:
    bad = get(apiserver, "/api/v1/nodes", limit=3, **cont("not base64!"))
    assert (bad.status_code, bad.json()["reason"]) == (400, "BadRequest")
    assert bad.json()["message"].startswith("invalid continue token: continue key is not valid")
    token = get(apiserver, "/api/v1/nodes", limit=3).json()["metadata"]["continue"]
    both = get(apiserver, "/api/v1/nodes", limit=3, resourceVersion="502", **cont(token))
    assert both.json()["message"] == "specifying resource version is not allowed when using continue"
    apiserver.store.too_large_rv_wait = 0.1
    future = get(apiserver, "/api/v1/nodes", resourceVersion="600")
    assert (future.status_code, future.headers["Retry-After"]) == (504, "1")
    assert future.json()["message"] == "Timeout: Too large resource version: 600, current: 502"
    old = get(apiserver, "/api/v1/nodes", limit=3, resourceVersion="400")  # limit + rv: an exact read
    assert (old.status_code, old.json()["message"]) == (410, "The resourceVersion for the provided list is too old.")


def test_an_exact_list_reads_the_past(apiserver: FakeApiServer) -> None:
    apiserver.delete_node("node-00000")
    past = get(apiserver, "/api/v1/nodes", resourceVersion="502", resourceVersionMatch="Exact").json()
    assert (past["metadata"]["resourceVersion"], len(past["items"])) == ("502", 8)
    assert len(get(apiserver, "/api/v1/nodes", resourceVersion="502").json()["items"]) == 7  # not older than
    invalid = get(apiserver, "/api/v1/nodes", resourceVersionMatch="Exact")
    assert (invalid.status_code, invalid.json()["reason"]) == (422, "Invalid")


def test_resource_version_0_is_served_from_the_watch_cache_without_paging(apiserver: FakeApiServer) -> None:
    page = get(apiserver, "/api/v1/nodes", limit=3, resourceVersion="0").json()
    assert page["metadata"] == {"resourceVersion": "502"}
    assert len(page["items"]) == 8


def test_get_one_object(apiserver: FakeApiServer) -> None:
    node = get(apiserver, "/api/v1/nodes/node-00003").json()
    assert (node["kind"], node["apiVersion"]) == ("Node", "v1")
    assert {k: v for k, v in node.items() if k not in ("kind", "apiVersion")} == recording("nodes-list-page2.json")["items"][0]
    pod = get(apiserver, "/api/v1/namespaces/default/pods/gpu-1").json()
    assert (pod["kind"], pod["metadata"]["uid"]) == ("Pod", "749a37f9-f505-422b-9ac2-d80ad3a25410")
    missing = get(apiserver, "/api/v1/nodes/node-09999")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'nodes "node-09999" not found', "reason": "NotFound",
        "details": {"name": "node-09999", "kind": "nodes"}, "code": 404,
    }  # fmt: skip


# -- node watches ------------------------------------------------------------------------------


def test_watch_stream_is_the_recording() -> None:
    recorded = [json.loads(line) for line in WATCH_LINES]
    with FakeApiServer(initial_rv=506) as server:  # the recorded stream's first event is 507
        stream = watch(server, "/api/v1/nodes", resourceVersion="506")
        assert stream.headers["Content-Type"] == "application/json"
        assert stream.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in stream.headers
        # node-00001 is listed with example.com/maintenance=true; the recording changes it
        server.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"example.com/maintenance": "planned"}))
        server.add_node(recorded[1]["object"])
        server.delete_node("node-00008")
        server.bookmark()
        server.end_watches()
        lines = list(stream.iter_lines())
    assert [json.loads(line)["type"] for line in lines] == ["MODIFIED", "ADDED", "DELETED", "BOOKMARK"]
    for line, want in zip(lines, recorded, strict=True):
        got = json.loads(line)
        assert (got["type"], got["object"]["kind"], got["object"]["apiVersion"]) == (
            want["type"], want["object"]["kind"], want["object"]["apiVersion"]
        )  # fmt: skip
        assert list(got["object"]["metadata"]) == list(want["object"]["metadata"])
    assert lines == WATCH_LINES  # byte for byte


def test_watch_events_follow_the_shared_revision_counter(apiserver: FakeApiServer) -> None:
    stream = watch(apiserver, "/api/v1/nodes", resourceVersion="502")
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"a": "b"}))
    apiserver.modify_pod("default", "gpu-1", lambda p: p["metadata"]["labels"].update({"a": "b"}))  # 504: a pod
    apiserver.delete_node("node-00002")
    apiserver.bookmark()
    apiserver.end_watches()
    got = [(e["type"], e["object"]["metadata"].get("name"), e["object"]["metadata"]["resourceVersion"]) for e in events(stream)]
    assert got == [("MODIFIED", "node-00001", "503"), ("DELETED", "node-00002", "505"), ("BOOKMARK", None, "505")]
    assert [(e.rv, e.type, e.kind) for e in apiserver.events] == [
        (503, "MODIFIED", "Node"), (504, "MODIFIED", "Pod"), (505, "DELETED", "Node")
    ]  # fmt: skip


def test_watch_from_0_starts_with_the_current_state(apiserver: FakeApiServer) -> None:
    stream = watch(apiserver, "/api/v1/nodes", resourceVersion="0")
    apiserver.add_synthetic_nodes(1)
    apiserver.end_watches()
    got = events(stream)
    assert [e["type"] for e in got] == ["ADDED"] * 9
    assert [e["object"]["metadata"]["name"] for e in got] == [f"node-{i:05d}" for i in range(9)]
    assert got[0]["object"]["metadata"]["resourceVersion"] == "207"  # each object's own


def test_watch_from_a_compacted_revision_is_one_error_event(apiserver: FakeApiServer) -> None:
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"a": "b"}))
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"a": "c"}))
    assert apiserver.compact() == 504
    # The stream must end right after the error, not stay open until timeoutSeconds (60 s):
    # a stream left open would stall the read below past its 5 s read timeout and fail it.
    query = {"watch": "1", "resourceVersion": "503", "timeoutSeconds": 60}
    stream = requests.get(apiserver.url + "/api/v1/nodes", params=query, headers=AUTH, stream=True, timeout=(5, 5))
    assert stream.status_code == 200
    assert list(stream.iter_lines()) == [
        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"too old resource version: 503 (504)","reason":"Expired","code":410}}'
    ]
    assert [e["type"] for e in events(watch(apiserver, "/api/v1/nodes", resourceVersion="504", timeoutSeconds=1))] == []


def test_watch_ends_cleanly_at_timeout_seconds(apiserver: FakeApiServer) -> None:
    started = time.monotonic()
    assert events(watch(apiserver, "/api/v1/nodes", resourceVersion="502", timeoutSeconds=1)) == []
    assert time.monotonic() - started > 0.9  # held open until timeoutSeconds (then ended, not timed out)


def test_end_watches_ends_streams_cleanly(apiserver: FakeApiServer) -> None:
    streams = [watch(apiserver, "/api/v1/nodes", resourceVersion="502"), watch(apiserver, "/api/v1/pods", resourceVersion="502")]
    assert apiserver.wait_for_watches(2)
    assert apiserver.end_watches() == 2
    assert [events(s) for s in streams] == [[], []]
    assert apiserver.open_watches == 0
    assert get(apiserver, "/healthz").text == "ok"


def test_drop_connections_is_a_connection_error_mid_stream(apiserver: FakeApiServer) -> None:
    stream = watch(apiserver, "/api/v1/nodes", resourceVersion="502")
    lines = stream.iter_lines()
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"a": "b"}))
    assert json.loads(next(lines))["type"] == "MODIFIED"
    assert apiserver.drop_connections() == 1
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        next(lines)
    assert apiserver.open_watches == 0


# -- pods ----------------------------------------------------------------------------------------


def test_pod_lists_equal_the_recordings(pods_server: FakeApiServer) -> None:
    assert get(pods_server, "/api/v1/pods").json() == recording("pods-list-page1.json")
    assert get(pods_server, "/api/v1/namespaces/default/pods").json() == recording("pods-list-page1.json")
    on_node = get(pods_server, "/api/v1/pods", fieldSelector="spec.nodeName=node-00003")
    assert on_node.json() == recording("pods-list-on-node.json")
    assert get(pods_server, "/api/v1/namespaces/other/pods").json()["items"] == []


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("spec.nodeName!=", ["bindme", "plain-1"]),
        ("spec.nodeName=", ["gpu-1"]),
        ("spec.nodeName=node-00005", ["plain-1"]),
        ("status.phase!=Pending", []),
        ("status.phase=Pending,spec.nodeName=,metadata.namespace=default", ["gpu-1"]),
        ("status.phase!=Succeeded,status.phase!=Failed", ["bindme", "gpu-1", "plain-1"]),
        ("spec.host=node-00003", ["bindme"]),
    ],
)
def test_pod_field_selectors(pods_server: FakeApiServer, selector: str, names: list[str]) -> None:
    items = get(pods_server, "/api/v1/pods", fieldSelector=selector).json()["items"]
    assert [pod["metadata"]["name"] for pod in items] == names


def test_an_unsupported_field_selector_is_400(pods_server: FakeApiServer) -> None:
    bad = get(pods_server, "/api/v1/pods", fieldSelector="spec.priority=0")
    assert (bad.status_code, bad.json()["message"]) == (400, "field label not supported: spec.priority")


@pytest.mark.parametrize(
    ("selector", "want"),
    [
        ("example.com/maintenance", lambda labels: "example.com/maintenance" in labels),
        ("!example.com/maintenance", lambda labels: "example.com/maintenance" not in labels),
        ("node-pool==gpu", lambda labels: labels["node-pool"] == "gpu"),
        ("node-pool!=batch", lambda labels: labels["node-pool"] != "batch"),
        (
            "node-pool=gpu,topology.kubernetes.io/zone in (zone-a, zone-b)",
            lambda labels: labels["node-pool"] == "gpu" and labels["topology.kubernetes.io/zone"] in ("zone-a", "zone-b"),
        ),
        ("topology.kubernetes.io/zone notin (zone-a)", lambda labels: labels["topology.kubernetes.io/zone"] != "zone-a"),
    ],
)
def test_label_selectors(apiserver: FakeApiServer, selector: str, want: Any) -> None:
    expected = [name for name, node in apiserver.nodes.items() if want(node["metadata"]["labels"])]
    assert 0 < len(expected) < 8
    items = get(apiserver, "/api/v1/nodes", labelSelector=selector).json()["items"]
    assert [node["metadata"]["name"] for node in items] == expected


def test_a_filtered_page_has_no_remaining_item_count(apiserver: FakeApiServer) -> None:
    page = get(apiserver, "/api/v1/nodes", limit=1, labelSelector="kubernetes.io/os=linux").json()
    assert "continue" in page["metadata"] and "remainingItemCount" not in page["metadata"]


# -- binding ------------------------------------------------------------------------------------


def bind(server: FakeApiServer, name: str, node: str, uid: str | None = None) -> requests.Response:
    meta = {"name": name, "namespace": "default", **({"uid": uid} if uid else {})}
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": meta, "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    return requests.post(f"{server.url}/api/v1/namespaces/default/pods/{name}/binding", json=body, headers=AUTH, timeout=10)


def test_bind_ok_is_the_recorded_201_and_binds_the_pod(pods_server: FakeApiServer) -> None:
    stream = watch(pods_server, "/api/v1/namespaces/default/pods", resourceVersion="513")
    ok = bind(pods_server, "gpu-1", "node-00004", uid="749a37f9-f505-422b-9ac2-d80ad3a25410")
    assert ok.status_code == 201
    assert ok.json() == recording("bind-ok.json")
    pod = pods_server.pods[("default", "gpu-1")]
    assert pod["spec"]["nodeName"] == "node-00004"
    assert list(pod["spec"]).index("nodeName") == list(pod["spec"]).index("dnsPolicy") + 1  # Go field order
    assert pod["metadata"]["resourceVersion"] == "514" == str(pods_server.resource_version)
    (scheduled,) = pod["status"]["conditions"]
    assert scheduled["type"] == "PodScheduled" and scheduled["status"] == "True"
    assert scheduled["lastTransitionTime"] != "2026-11-25T17:07:35Z" and "reason" not in scheduled
    pods_server.end_watches()
    (event,) = events(stream)
    assert (event["type"], event["object"]["metadata"]["name"], event["object"]["spec"]["nodeName"]) == (
        "MODIFIED", "gpu-1", "node-00004"
    )  # fmt: skip


def test_bind_an_already_bound_pod_is_the_recorded_409(pods_server: FakeApiServer) -> None:
    for node in ("node-00003", "node-00004"):  # whatever node: also a retry of a bind that succeeded
        conflict = bind(pods_server, "bindme", node)
        assert conflict.status_code == 409
        assert conflict.json() == recording("bind-conflict.json")
        recorded = (RECORDINGS / "bind-conflict.json").read_text()
        assert json.dumps(conflict.json()["message"]) in recorded  # the message byte for byte
    assert pods_server.resource_version == 513


def test_bind_a_missing_pod_is_the_recorded_404(pods_server: FakeApiServer) -> None:
    missing = bind(pods_server, "nosuchpod", "node-00003")
    assert missing.status_code == 404
    assert missing.json() == recording("bind-notfound.json")


def test_bind_with_a_stale_uid_fails_the_precondition(pods_server: FakeApiServer) -> None:
    stale = bind(pods_server, "gpu-1", "node-00004", uid="e3fd54d1-248d-4546-873e-ff4533acbac8")
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert stale.json()["details"] == {"name": "gpu-1", "kind": "pods"}
    assert stale.json()["message"] == (
        'Operation cannot be fulfilled on pods "gpu-1": StorageError: invalid object, Code: 4, '
        "Key: /registry/pods/default/gpu-1, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: "
        "UID in precondition: e3fd54d1-248d-4546-873e-ff4533acbac8, UID in object meta: 749a37f9-f505-422b-9ac2-d80ad3a25410"
    )
    assert "nodeName" not in pods_server.pods[("default", "gpu-1")]["spec"]


def test_a_pod_leaving_a_field_selector_is_deleted_from_that_watch(pods_server: FakeApiServer) -> None:
    unbound = watch(pods_server, "/api/v1/pods", resourceVersion="0", fieldSelector="spec.nodeName=")
    assert bind(pods_server, "gpu-1", "node-00001").status_code == 201
    pods_server.end_watches()
    added, deleted = events(unbound)
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "gpu-1")
    assert deleted["type"] == "DELETED"
    assert deleted["object"]["metadata"]["resourceVersion"] == "514"
    assert "nodeName" not in deleted["object"]["spec"]  # the last state that matched


# -- other paths -----------------------------------------------------------------------------------


def test_the_metrics_api_is_absent_as_recorded(apiserver: FakeApiServer) -> None:
    absent = get(apiserver, "/apis/metrics.k8s.io/v1beta1/nodes")
    assert absent.status_code == 404
    assert absent.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert absent.content == (RECORDINGS / "metrics-api-absent.json").read_bytes()


def test_unknown_paths_and_methods(apiserver: FakeApiServer) -> None:
    for path in ("/api/v1/services", "/api/v1/namespaces/default/nodes", "/api/v1/pods/gpu-1"):
        unknown = get(apiserver, path)
        assert (unknown.status_code, unknown.json()["reason"], unknown.json()["details"]) == (404, "NotFound", {})
    delete = requests.delete(apiserver.url + "/api/v1/nodes/node-00001", headers=AUTH, timeout=10)
    assert (delete.status_code, delete.json()["reason"]) == (405, "MethodNotAllowed")
    for response in (get(apiserver, "/version"), get(apiserver, "/api/v1/services"), delete):
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert response.headers["Cache-Control"] == "no-cache, private" and response.headers["Audit-Id"]


def test_modifying_nothing_writes_nothing(apiserver: FakeApiServer) -> None:
    apiserver.modify_node("node-00001", lambda n: None)
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"node-pool": "batch"}))
    assert apiserver.resource_version == 502 and apiserver.events == []


# -- faults and auth ---------------------------------------------------------------------------


def test_fail_next(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("GET", "/api/v1/nodes", 503, times=2, retry_after=3)
    apiserver.fail_next("POST", "/api/v1/", 500)
    assert get(apiserver, "/api/v1/pods").status_code == 200
    for _ in range(2):
        failed = get(apiserver, "/api/v1/nodes", limit=3)
        assert (failed.status_code, failed.headers["Retry-After"]) == (503, "3")
        assert failed.json()["reason"] == "ServiceUnavailable"
        assert failed.json()["details"] == {"retryAfterSeconds": 3}
    assert get(apiserver, "/api/v1/nodes", limit=3).status_code == 200
    assert bind(apiserver, "nosuchpod", "node-00001").status_code == 500
    apiserver.fail_next("*", "/api", 429, body="Too many requests, please try again later.\n")
    throttled = get(apiserver, "/api/v1/nodes")
    assert (throttled.status_code, throttled.headers["Content-Type"]) == (429, "text/plain; charset=utf-8")
    assert [r.status for r in apiserver.requests[-3:]] == [200, 500, 429]


def test_delay_next_makes_a_client_time_out(apiserver: FakeApiServer) -> None:
    apiserver.delay_next("/api/v1/nodes", 30.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(apiserver.url + "/api/v1/nodes", headers=AUTH, timeout=0.2)
    # Only the next request is delayed: a second delay of 30 s would time this one out (10 s).
    assert get(apiserver, "/api/v1/nodes").status_code == 200


def test_401_without_the_token_and_after_rotation(apiserver: FakeApiServer) -> None:
    unauthorized = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    }  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
        denied = get(apiserver, "/api/v1/nodes", headers=headers)
        assert (denied.status_code, denied.json()) == (401, unauthorized)
    apiserver.token = "rotated"
    assert get(apiserver, "/api/v1/nodes").status_code == 401
    assert get(apiserver, "/api/v1/nodes", headers={"Authorization": "bearer rotated"}).status_code == 200
    assert apiserver.requests[-1].headers["authorization"] == "bearer rotated"


# -- TLS -----------------------------------------------------------------------------------------


def test_tls_with_a_client_certificate(tls_apiserver: FakeApiServer, tls: TlsFiles) -> None:
    assert tls_apiserver.url.startswith("https://127.0.0.1:")
    cert = (str(tls.client_cert), str(tls.client_key))
    response = requests.get(tls_apiserver.url + "/api/v1/nodes", verify=str(tls.ca_cert), cert=cert, timeout=10)
    assert response.status_code == 200  # the certificate authenticates: no token needed
    assert response.json()["metadata"]["resourceVersion"] == "502"
    assert tls_apiserver.requests[-1].client_cert_cn == "extender"
    query: dict[str, Any] = {"watch": "1", "resourceVersion": "502", "timeoutSeconds": 5}
    stream = requests.get(
        tls_apiserver.url + "/api/v1/nodes", params=query, verify=str(tls.ca_cert), cert=cert, stream=True, timeout=10
    )
    tls_apiserver.add_synthetic_nodes(1)
    tls_apiserver.end_watches()
    assert [e["type"] for e in events(stream)] == ["ADDED"]


def test_tls_without_a_client_certificate_is_refused(tls_apiserver: FakeApiServer, tls: TlsFiles) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(tls_apiserver.url + "/api/v1/nodes", verify=str(tls.ca_cert), headers=AUTH, timeout=10)
    with pytest.raises(requests.exceptions.SSLError):  # and the server is not the client's CA's
        requests.get(tls_apiserver.url + "/api/v1/nodes", verify=True, timeout=10)


def test_tls_with_an_optional_client_certificate(tls: TlsFiles) -> None:
    with FakeApiServer(tls=tls) as server:
        plain = requests.get(server.url + "/api/v1/nodes", verify=str(tls.ca_cert), headers=AUTH, timeout=10)
        assert (plain.status_code, server.requests[-1].client_cert_cn) == (200, None)
        anonymous = requests.get(server.url + "/api/v1/nodes", verify=str(tls.ca_cert), timeout=10)
        assert anonymous.status_code == 401


# -- scale --------------------------------------------------------------------------------------


def test_many_synthetic_nodes(apiserver: FakeApiServer) -> None:
    names = apiserver.add_synthetic_nodes(2000)
    assert names[0] == "node-00008" and names[-1] == "node-02007"
    assert apiserver.resource_version == 502 + 2000
    clone = apiserver.nodes["node-00100"]
    assert clone["metadata"]["labels"]["kubernetes.io/hostname"] == "node-00100"
    assert clone["metadata"]["uid"] != apiserver.nodes["node-00000"]["metadata"]["uid"]
    pages, token = [], ""
    while True:
        page = get(apiserver, "/api/v1/nodes", limit=500, **cont(token))
        pages.append(page.json())
        big = len(pages[-1]["items"]) == 500  # ~3.8 MB: above the 128 KiB gzip threshold; 8 nodes are not
        assert page.headers.get("Content-Encoding") == ("gzip" if big else None)
        if not (token := page.json()["metadata"].get("continue", "")):
            break
    assert [len(p["items"]) for p in pages] == [500, 500, 500, 500, 8]
