"""Readiness stays honest when the API server goes away, and comes back when it does.

The rule (ClusterState.readiness, README "Readiness and health"): ready while every cache has
completed its first list and none has been without the API server for --cache-stale-seconds
or more. /healthz stays 200 and says how long each cache has been disconnected. A cache that
synced keeps answering names-mode requests while disconnected; one that never synced answers
an Error. Against the fake API server: in process, and through a real ``extender serve``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from extender.kube.cluster import ClusterState
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.web import create_app
from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import live_extender, write_kubeconfig
from tests.live_server import Server
from tests.kube.test_names_mode import GPU_POOL, POLICY, cluster_for
from tests.test_server import free_port

FILTER = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
STALE = re.compile(
    r"^cache stale: nodes without the API server for \d+\.\ds(?: \(last error: (?P<error>.+)\))?; "
    r"the limit is (?P<limit>[\d.]+)s \(--cache-stale-seconds\)$"
)
#: kube-apiserver's RBAC denial of the node cache's watch
WATCH_DENIED = {
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'nodes is forbidden: User "system:serviceaccount:extender-system:extender" cannot watch resource '
    '"nodes" in API group "" at the cluster scope',
    "details": {"kind": "nodes"},
}  # fmt: skip


def json_of(response: Any) -> Any:
    return json.loads(response.data if hasattr(response, "data") else response.content)


def kernel_deadlock(node: dict[str, Any]) -> None:
    node["status"]["conditions"].append({"type": "KernelDeadlock", "status": "True"})


@pytest.fixture
def app(apiserver: FakeApiServer) -> Iterator[tuple[FlaskClient, ClusterState]]:
    """Names mode with a 1 s staleness bound."""
    cluster = cluster_for(apiserver, stale_after=1.0)
    flask_app = create_app(Settings(node_cache=True), policy=load_policy_text(POLICY), cluster=cluster)
    assert cluster.wait_synced(5)
    yield flask_app.test_client(), cluster
    cluster.stop()


def test_the_staleness_bound_is_a_setting() -> None:
    assert Settings().cache_stale_seconds == 60.0
    assert Settings.from_env({"EXTENDER_CACHE_STALE_SECONDS": "90"}).cache_stale_seconds == 90.0
    assert Settings(cache_stale_seconds=0).validate() == ["cache stale seconds 0: must be greater than 0"]


def test_routine_watch_renewals_and_resets_never_flap_readiness(apiserver: FakeApiServer) -> None:
    cluster = cluster_for(apiserver)  # the default bound, 60 s
    client = create_app(Settings(node_cache=True), policy=load_policy_text(POLICY), cluster=cluster).test_client()
    try:
        assert cluster.wait_synced(5)
        codes = []
        for disrupt in (apiserver.end_watches, apiserver.drop_connections, apiserver.end_watches):
            assert apiserver.wait_for_watches(1)
            disrupt()

            def reconnected() -> bool:
                codes.append(client.get("/readyz").status_code)
                return bool(json_of(client.get("/healthz"))["caches"]["nodes"]["connected"])

            eventually(reconnected)
        assert set(codes) == {200}
    finally:
        cluster.stop()


def test_an_api_server_that_stops_answering_makes_the_replica_unready_until_it_answers(
    app: tuple[FlaskClient, ClusterState], apiserver: FakeApiServer
) -> None:
    client, _ = app
    before = json_of(client.post("/scheduler/filter", data=FILTER))
    assert apiserver.wait_for_watches(1)
    # The watch breaks and every new request hangs: the reflector's thread is stuck in a call,
    # yet readiness must still see the time pass.
    apiserver.delay_next("/api/v1/nodes", 60.0, times=1000)
    apiserver.drop_connections()
    eventually(lambda: client.get("/readyz").status_code == 503)
    match = STALE.match(json_of(client.get("/readyz"))["detail"])
    assert match, json_of(client.get("/readyz"))
    assert match["limit"] == "1" and "connection reset by peer" in (match["error"] or "")
    health = client.get("/healthz")
    assert health.status_code == 200, "liveness must not restart a replica for the API server's sake"
    nodes = json_of(health)["caches"]["nodes"]
    assert nodes["synced"] is True and nodes["connected"] is False and nodes["disconnectedSeconds"] >= 1.0
    # Stale but synced: answered from the last state it has, not with an Error.
    assert json_of(client.post("/scheduler/filter", data=FILTER)) == before
    assert sorted(before["NodeNames"]) == GPU_POOL

    apiserver.modify_node("node-00005", kernel_deadlock)  # changes while it is away
    apiserver.delete_node("node-00006")
    apiserver.clear_delays()
    eventually(lambda: client.get("/readyz").status_code == 200)
    assert json_of(client.get("/readyz"))["detail"] == "caches synced"
    eventually(lambda: "node-00006" in json_of(client.post("/scheduler/filter", data=FILTER))["FailedAndUnresolvableNodes"])
    reply = json_of(client.post("/scheduler/filter", data=FILTER))
    assert reply["FailedAndUnresolvableNodes"]["node-00005"] == "node(s) had condition KernelDeadlock=True"
    assert json_of(client.get("/healthz"))["caches"]["nodes"]["lastError"] == ""


def revoke_token(server: FakeApiServer) -> Callable[[], None]:
    server.token = "revoked"
    return lambda: setattr(server, "token", "test-token")


def deny_watch(server: FakeApiServer) -> Callable[[], None]:
    server.fail_next("GET", "/api/v1/nodes", 403, times=100_000, body=WATCH_DENIED)
    return server.clear_faults


@pytest.mark.parametrize(
    ("break_it", "logged", "status"),
    [
        (
            revoke_token,
            "nodes: the API server rejected the extender's credentials (GET /api/v1/nodes: 401 Unauthorized): the "
            "token or client certificate is invalid, expired or revoked; the nodes cache keeps its last state; "
            "retrying in ",
            "401 Unauthorized",
        ),
        (
            deny_watch,
            'nodes: forbidden by RBAC (GET /api/v1/nodes: 403 nodes is forbidden: User "system:serviceaccount:'
            'extender-system:extender" cannot watch resource "nodes" in API group "" at the cluster scope): the '
            "extender's identity needs list and watch on nodes; the nodes cache keeps its last state; retrying in ",
            "403 nodes is forbidden",
        ),
    ],
    ids=["401", "403"],
)
def test_credentials_or_rbac_lost_mid_way_are_logged_as_such(
    app: tuple[FlaskClient, ClusterState],
    apiserver: FakeApiServer,
    caplog: pytest.LogCaptureFixture,
    break_it: Callable[[FakeApiServer], Callable[[], None]],
    logged: str,
    status: str,
) -> None:
    client, _ = app
    caplog.set_level(logging.INFO, logger="extender.kube")
    restore = break_it(apiserver)
    apiserver.end_watches()  # the next watch request meets the new rules

    def reported() -> bool:
        return any(r.levelno == logging.ERROR and r.getMessage().startswith(logged) for r in caplog.records)

    eventually(reported)
    eventually(lambda: client.get("/readyz").status_code == 503)
    assert status in json_of(client.get("/readyz"))["detail"]
    restore()
    eventually(lambda: client.get("/readyz").status_code == 200, timeout=60)  # one backoff away at most
    assert any("nodes: connected to the API server again after " in r.getMessage() for r in caplog.records)


def test_api_connections_detect_a_silent_peer_with_tcp_keepalive(app: tuple[FlaskClient, ClusterState]) -> None:
    # A partition that drops packets sends no RST: without keepalive the watch would look
    # connected until its read timeout (up to 10 minutes) and readiness would not move.
    _, cluster = app
    (reflector,) = cluster.reflectors
    eventually(lambda: reflector._stream is not None)
    stream = reflector._stream
    assert stream is not None
    sock = stream.raw._connection.sock  # the live watch connection
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) * sock.getsockopt(
        socket.IPPROTO_TCP, socket.TCP_KEEPCNT
    ) == 30


# -- through the real server -----------------------------------------------------------------------


def readyz(live: Server) -> tuple[int, str]:
    response = live.get("/readyz")
    return response.status_code, response.json()["detail"]


def test_live_api_server_down_at_start_up_then_up(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    with live_extender(tmp_path, kubeconfig, POLICY, "--cache-stale-seconds", "2") as live:
        eventually(lambda: "connection refused" in readyz(live)[1])
        code, detail = readyz(live)
        assert code == 503
        assert detail == (
            "waiting for the first list of: nodes (last error: nodes: GET /api/v1/nodes: "
            f"cannot reach http://127.0.0.1:{port}: connection refused)"
        )
        health = live.get("/healthz")
        assert health.status_code == 200
        assert health.json()["caches"]["nodes"]["synced"] is False
        assert health.json()["caches"]["nodes"]["connected"] is False
        reply = live.post("filter", FILTER).json()
        assert reply["Error"].startswith("the extender's node cache has not completed its first list")

        with FakeApiServer(port=port):
            eventually(live.ready, timeout=60)  # the next retry, within the backoff's 30 s cap
            # Ready from the first list on; until its watch is connected, a moment later, the
            # detail says it answers from the cache while reconnecting.
            eventually(lambda: readyz(live) == (200, "caches synced"))
            assert sorted(live.post("filter", FILTER).json()["NodeNames"]) == GPU_POOL


def test_live_api_server_outage_mid_watch(tmp_path: Path, apiserver: FakeApiServer) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    with live_extender(tmp_path, kubeconfig, POLICY, "--cache-stale-seconds", "2") as live:
        eventually(live.ready)
        before = live.post("filter", FILTER).json()
        apiserver.stop()  # connections refused from now on
        eventually(lambda: readyz(live)[0] == 503)
        match = STALE.match(readyz(live)[1])
        assert match and match["limit"] == "2", readyz(live)
        assert "connection refused" in (match["error"] or "")
        assert live.get("/healthz").status_code == 200
        assert live.post("filter", FILTER).json() == before, "stale but synced: answered from the cache"

        apiserver.modify_node("node-00005", kernel_deadlock)
        apiserver.delete_node("node-00006")
        apiserver.start()  # the same port, the same state
        eventually(live.ready, timeout=60)
        eventually(lambda: "node-00006" in live.post("filter", FILTER).json()["FailedAndUnresolvableNodes"])
        reply = live.post("filter", FILTER).json()
        assert reply["NodeNames"] == ["node-00007", "node-00003"]
        assert reply["FailedAndUnresolvableNodes"]["node-00005"] == "node(s) had condition KernelDeadlock=True"
    log = live.output()
    assert "nodes: connected to the API server again after " in log
    assert "Traceback" not in log
