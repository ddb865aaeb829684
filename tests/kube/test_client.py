"""KubeClient against the fake API server: pagination, retries, error mapping, watches, TLS."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig, FileToken, StaticToken
from extender.kube.errors import ApiTimeout, Forbidden, Gone, NotFound, ServerError, TooManyRequests, TransportError, Unauthorized
from tests.kube.fake_apiserver import FakeApiServer


def client_for(server: FakeApiServer, token: str = "test-token", **kwargs: object) -> tuple[KubeClient, list[float]]:
    slept: list[float] = []
    config = ClusterConfig(server=server.url, token_source=StaticToken(token))
    return KubeClient(config, sleep=slept.append, **kwargs), slept  # type: ignore[arg-type]


def test_list_pages_follows_continue_tokens(apiserver: FakeApiServer) -> None:
    client, _ = client_for(apiserver)
    pages = list(client.list_pages("/api/v1/nodes", limit=3))
    names = [n for page in pages for n in page.items]
    assert len(pages) == 3 and len(names) == 8
    assert {p.resource_version for p in pages} == {str(apiserver.resource_version)}
    queries = [r.query for r in apiserver.requests if r.path == "/api/v1/nodes"]
    assert [q.get("limit") for q in queries] == ["3", "3", "3"]
    assert "continue" not in queries[0] and queries[1]["continue"] == pages[0].continue_token


def test_retries_server_errors_and_throttling_with_backoff(apiserver: FakeApiServer) -> None:
    client, slept = client_for(apiserver)
    apiserver.fail_next("GET", "/api/v1/nodes", 503)
    apiserver.fail_next("GET", "/api/v1/nodes", 429, retry_after=2)
    assert client.request("GET", "/api/v1/nodes/node-00001").status_code == 200
    assert len(slept) == 2 and slept[1] >= 2.0  # Retry-After honoured


def test_gives_up_after_the_retry_budget(apiserver: FakeApiServer) -> None:
    client, slept = client_for(apiserver, retries=2)
    apiserver.fail_next("GET", "/api/v1/nodes", 500, times=5)
    with pytest.raises(ServerError) as err:
        client.request("GET", "/api/v1/nodes")
    assert err.value.status == 500 and len(slept) == 2


def test_posts_are_not_retried_unless_asked(apiserver: FakeApiServer) -> None:
    client, slept = client_for(apiserver)
    apiserver.fail_next("POST", "/api/v1/namespaces/default/pods/gpu-1/binding", 503)
    with pytest.raises(ServerError):
        client.request("POST", "/api/v1/namespaces/default/pods/gpu-1/binding", body=b"{}")
    assert slept == []


def test_errors_map_to_classes_with_the_servers_message(apiserver: FakeApiServer) -> None:
    client, _ = client_for(apiserver)
    with pytest.raises(NotFound, match=r'nodes "node-x" not found'):
        client.request("GET", "/api/v1/nodes/node-x")
    apiserver.fail_next("GET", "/api/v1/nodes", 403, body=None)
    with pytest.raises(Forbidden):
        client.request("GET", "/api/v1/nodes")
    # A plain-text 404 (no metrics-server) is still a clean NotFound, not a decode error.
    with pytest.raises(NotFound, match="404 page not found"):
        client.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")


def test_a_401_rereads_a_rotated_token_once(apiserver: FakeApiServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("test-token")
    client = KubeClient(ClusterConfig(server=apiserver.url, token_source=FileToken(str(token_file), reread_after=3600)))
    assert client.request("GET", "/api/v1/nodes/node-00001").status_code == 200
    apiserver.token = "rotated"
    token_file.write_text("rotated")
    assert client.request("GET", "/api/v1/nodes/node-00001").status_code == 200
    apiserver.token = "gone"
    with pytest.raises(Unauthorized):
        client.request("GET", "/api/v1/nodes/node-00001")


def test_every_call_has_a_timeout(apiserver: FakeApiServer) -> None:
    client, _ = client_for(apiserver, timeout=0.3, retries=0)
    apiserver.delay_next("/api/v1/nodes", 1.0)
    with pytest.raises(ApiTimeout, match=r"^GET /api/v1/nodes: no answer from http://127\.0\.0\.1:\d+ within 0\.3s$"):
        client.request("GET", "/api/v1/nodes")


def test_watch_streams_events_and_maps_expiry_to_gone(apiserver: FakeApiServer) -> None:
    client, _ = client_for(apiserver)
    start = str(apiserver.resource_version)
    apiserver.modify_node("node-00001", lambda n: n["metadata"]["labels"].update({"example.com/maintenance": "planned"}))
    apiserver.delete_node("node-00002")
    events = client.watch("/api/v1/nodes", resource_version=start, timeout_seconds=1)
    assert [(e.type, e.resource_version) for e in (next(events), next(events))] == [
        ("MODIFIED", str(int(start) + 1)),
        ("DELETED", str(int(start) + 2)),
    ]
    events.close()
    apiserver.compact()
    with pytest.raises(Gone, match="too old resource version"):
        list(client.watch("/api/v1/nodes", resource_version=start, timeout_seconds=1))
    query = apiserver.requests[-1].query
    assert query["allowWatchBookmarks"] == "true" and query["watch"] == "1"


def test_a_dropped_watch_is_a_transport_error(apiserver: FakeApiServer) -> None:
    client, _ = client_for(apiserver)
    events = client.watch("/api/v1/nodes", resource_version=str(apiserver.resource_version), timeout_seconds=5)
    threading.Timer(0.3, apiserver.drop_connections).start()
    with pytest.raises(TransportError):
        list(events)


def test_tls_with_a_client_certificate(tls_apiserver: FakeApiServer, tls: object) -> None:
    config = ClusterConfig(
        server=tls_apiserver.url,
        ca_file=str(tls.ca_cert),  # type: ignore[attr-defined]
        client_cert=(str(tls.client_cert), str(tls.client_key)),  # type: ignore[attr-defined]
        token_source=StaticToken("test-token"),
    )
    assert KubeClient(config).request("GET", "/api/v1/nodes/node-00001").status_code == 200
    assert tls_apiserver.requests[-1].client_cert_cn == "extender"
    with pytest.raises(TransportError):
        KubeClient(ClusterConfig(server=tls_apiserver.url, token_source=StaticToken("test-token")), retries=0).request(
            "GET", "/api/v1/nodes"
        )
