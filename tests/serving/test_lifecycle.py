"""Shutdown and worker faults of a real ``extender serve``: SIGTERM drains, a killed worker
is replaced."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import requests

from extender import gunicorn_conf
from tests.conftest import eventually, fixture
from tests.live_server import raw, read_response, running_server

FILTER = fixture("kube-scheduler-v1.30", "full-nodes", "00001-filter-web-1")
HEAD = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


def test_sigterm_turns_readiness_503_finishes_requests_in_flight_and_exits_within_the_grace_period(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, "--workers", "1", "--read-timeout", "10") as server:
        kept_alive = raw(server.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept_alive)[0] == 200
        in_flight = raw(server.port, HEAD % len(FILTER) + FILTER[:2000])  # accepted, half-sent
        time.sleep(0.3)

        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # A probe on a connection the server already had: not ready from now on (and closed).
        kept_alive.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(kept_alive)
        assert (status, headers["connection"]) == (503, "close")
        assert b"shutting down" in body
        # New connections are no longer accepted.
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as late:
                late.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert late.recv(100) == b"", "a stopping server served a new connection"
        except OSError:
            pass  # refused or reset: what a client of a stopping replica should see
        # The request in flight completes.
        in_flight.sendall(FILTER[2000:])
        status, _, body = read_response(in_flight)
        assert status == 200 and b'"Nodes"' in body

        assert server.process.wait(timeout=60) == 0
        took = time.monotonic() - stopping
        # The preStop sleep (5 s) + graceful_timeout must fit terminationGracePeriodSeconds (30).
        assert took < gunicorn_conf.graceful_timeout, f"took {took:.1f} s"
        assert "Traceback" not in server.log_text()


def test_a_worker_killed_mid_request_is_replaced_and_later_requests_succeed(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "1") as server:
        eventually(lambda: len(server.worker_pids()) == 1)
        (victim,) = server.worker_pids()
        upload = raw(server.port, HEAD % len(FILTER) + FILTER[:1000])  # a request in flight on it
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        try:
            upload.sendall(FILTER[1000:])
            assert upload.recv(100) == b"", "a killed worker cannot answer"
        except OSError:
            pass  # reset: the connection died with its worker, nothing was half-answered
        eventually(lambda: len(server.worker_pids()) == 1 and victim not in server.worker_pids())
        (replacement,) = server.worker_pids()
        session = requests.Session()
        for _ in range(20):
            assert session.post(f"{server.url}/scheduler/filter", data=FILTER, timeout=10).status_code == 200
            assert requests.post(f"{server.url}/scheduler/filter", data=FILTER, timeout=10).status_code == 200
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
        log = server.log_text()
        assert log.index(f"Worker (pid:{victim}) was sent SIGKILL") < log.index(f"Booting worker with pid: {replacement}")
