"""The real server: ``extender serve`` under gunicorn on a loopback port, driven like kube-scheduler
drives it (sequential POSTs over one keep-alive connection), with the recorded requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests

from extender.cli import _parser
from extender.server import ExtenderServer
from extender.settings import Settings
from tests.conftest import fixture, fixture_id, request_line, scheduler_fixtures, verb_of
from tests.records import decision_records, rejected_count

POLICY = """
predicates:
- type: node-condition
  params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}
- type: node-selector-policy
  params:
    mappings:
    - name: databases
      namespaces: [default]
      podSelector: {matchLabels: {app: db}}
      nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}]}]
"""
MAX_BODY = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local_port(session: requests.Session, url: str) -> int:
    """The client port of the session's one idle connection: it changes if urllib3 had to
    reconnect (urllib3 silently reopens a connection the server closed)."""
    pools = session.get_adapter(url).poolmanager.pools
    socks = [conn.sock for key in pools.keys() for conn in list(pools[key].pool.queue) if conn is not None and conn.sock]
    assert len(socks) == 1, f"expected one open connection, found {len(socks)}"
    port: int = socks[0].getsockname()[1]
    return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("server did not become ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    log = tmp / "server.log"
    port = free_port()
    env = {**os.environ, "EXTENDER_POLICY": str(policy), "EXTENDER_MAX_BODY_BYTES": str(MAX_BODY)}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "extender", "serve", "--port", str(port), "--workers", "2", "--threads", "4"],
            stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Server(process, url, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_recorded_requests_over_one_keep_alive_connection(server: Server) -> None:
    session = requests.Session()
    ports = set()
    for path in scheduler_fixtures():
        method, target = request_line(path)
        response = session.post(
            server.url + target, data=path.read_bytes(), headers={"Content-Type": "application/json"}, timeout=5
        )
        assert response.status_code == 200, (fixture_id(path), response.text)
        assert response.headers["Content-Type"] == "application/json"
        reply = response.json()
        if verb_of(path) == "prioritize":
            assert isinstance(reply, list) and all(type(h["Score"]) is int for h in reply)
        elif verb_of(path) == "preempt":
            assert len(reply["NodeNameToMetaVictims"]) == 8
        ports.add(local_port(session, server.url))
    assert len(ports) == 1, "every call must reuse the one keep-alive connection"


def test_decisions_over_the_wire(server: Server) -> None:
    body = fixture("kube-scheduler-v1.30", "full-nodes", "00005-filter-db-1")
    reply = requests.post(f"{server.url}/scheduler/filter", data=body, timeout=5).json()
    assert sorted(n["metadata"]["name"] for n in reply["Nodes"]["items"]) == ["node-00000", "node-00003", "node-00006"]
    assert set(reply["FailedAndUnresolvableNodes"].values()) == {"node(s) not in node pool 'databases'"}


def test_keep_alive_outlives_an_idle_gap_longer_than_gunicorns_default(server: Server) -> None:
    # gunicorn's default keep-alive (2 s) closes idle connections under the Go client and the
    # next call fails with "connection reset by peer"; ours (100 s) outlives the client's 90 s.
    session = requests.Session()
    body = fixture("kube-scheduler-v1.30", "node-cache", "00002-prioritize-gpu-1")
    assert session.post(f"{server.url}/scheduler/prioritize", data=body, timeout=5).status_code == 200
    before = local_port(session, server.url)
    time.sleep(3)
    assert session.post(f"{server.url}/scheduler/prioritize", data=body, timeout=5).status_code == 200
    assert local_port(session, server.url) == before, "the server closed the idle keep-alive connection"


def test_body_limit_is_enforced_with_a_json_413(server: Server) -> None:
    body = b'{"Pod": {"metadata": {}}, "NodeNames": ["' + b"n" * (MAX_BODY + 10) + b'"]}'
    response = requests.post(f"{server.url}/scheduler/filter", data=body, timeout=10)
    assert response.status_code == 413
    assert "the limit is 1048576 bytes" in response.json()["error"]
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_chunked_bodies_are_read_too(server: Server) -> None:
    body = fixture("kube-scheduler-v1.30", "full-nodes", "00003-filter-batch-1")
    chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
    response = requests.post(f"{server.url}/scheduler/filter", data=chunks, timeout=5)
    assert response.status_code == 200
    assert len(response.json()["Nodes"]["items"]) == 4


def test_malformed_input_is_a_400_and_the_worker_survives(server: Server) -> None:
    session = requests.Session()
    response = session.post(f"{server.url}/scheduler/filter", data=b'{"Pod": ', timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "filter: request body is not valid JSON: Input data was truncated"}
    assert session.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}


def test_decision_log_and_graceful_shutdown(server: Server) -> None:
    process = server.process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=25) == 0
    log = server.log.read_text()
    record = [r for r in decision_records(log.splitlines(), "filter") if r["pod"]["name"] == "db-1"][-1]
    assert (record["nodes"], record["passed"], rejected_count(record), record["outcome"]) == (6, 3, 3, "answered")
    assert "Traceback" not in log


def test_the_probe_port_binds_the_probe_host_when_one_is_given() -> None:
    # The chart's sidecar keeps its verbs on loopback and serves /metrics (probe port) on the pod IP.
    base = Settings(host="127.0.0.1", port=8888, probe_port=8081)
    assert ExtenderServer(base).gunicorn_settings()["bind"] == ["127.0.0.1:8888", "127.0.0.1:8081"]
    assert Settings.from_env({"EXTENDER_PROBE_HOST": "0.0.0.0"}).probe_host == "0.0.0.0"
    args = _parser().parse_args(["serve", "--probe-port", "8081", "--probe-host", "0.0.0.0"])
    assert Settings().with_overrides(vars(args)).probe_host == "0.0.0.0"
    wide = replace(base, probe_host="0.0.0.0")
    assert ExtenderServer(wide).gunicorn_settings()["bind"] == ["127.0.0.1:8888", "0.0.0.0:8081"]


def test_a_sidecar_on_loopback_serves_its_metrics_on_every_address(tmp_path: Path) -> None:
    # 127.0.0.2 stands for the pod IP: a listener bound to 127.0.0.1 does not accept it.
    from tests.live_server import running_server  # here: tests.live_server imports this module

    probe_port = free_port()
    with running_server(tmp_path, "--host", "127.0.0.1", "--probe-port", str(probe_port), "--probe-host", "0.0.0.0") as server:
        scrape = requests.get(f"http://127.0.0.2:{probe_port}/metrics", timeout=5)
        assert scrape.status_code == 200 and "extender_policy_info" in scrape.text
        refused = requests.post(f"http://127.0.0.2:{probe_port}/scheduler/filter", data="{}", timeout=5)
        assert refused.status_code == 404  # the probe port answers no verb
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.2:{server.port}/readyz", timeout=5)
