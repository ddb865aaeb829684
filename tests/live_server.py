"""Real ``extender serve`` processes on loopback ports, and raw-socket clients for them.

The one place tests start the service as an operator runs it (the CLI, gunicorn, the
workers); tests/kube/live.py adds the kubeconfig and cache flags for the API tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.test_server import free_port

ROOT = Path(__file__).resolve().parents[1]  # the checkout


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10)

    def post(self, verb: str, body: bytes) -> requests.Response:
        return requests.post(f"{self.url}/scheduler/{verb}", data=body, timeout=10)

    def ready(self) -> bool:
        return self.get("/readyz").status_code == 200

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    output = log_text


@contextmanager
def running_server(
    tmp: Path, *args: str, env: dict[str, str] | None = None, ready: Any = None, timeout: float = 60
) -> Iterator[Server]:
    """``extender serve`` with ``args`` until the block exits; waits until ``ready(server)``
    (by default: ``GET /readyz`` answers 200 over plain HTTP)."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("EXTENDER_", "KUBERNETES_"))}
    environment.update(env or {})
    environment["PYTHONPATH"] = str(ROOT)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "extender", "serve", "--port", str(port), *args],
            stdout=sink, stderr=subprocess.STDOUT, text=True, env=environment, cwd=ROOT,
        )  # fmt: skip
    server = Server(process, port, log, "https" if "--tls-cert" in args else "http")
    check = ready or (lambda s: requests.get(f"{s.url}/readyz", timeout=2).status_code == 200)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if check(server):
                    break
            except (requests.ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()  # a graceful stop flushes the log
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def raw(port: int, data: bytes = b"", timeout: float = 10) -> socket.socket:
    """A plain TCP connection that has sent ``data``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if data:
        sock.sendall(data)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response read off ``sock``: status, headers (lower-case names), body.
    Bytes after it are dropped: for pipelined responses use :func:`read_responses`."""
    return read_responses(sock, 1)[0]


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP/1.1 responses read off ``sock`` one after the other (they may arrive
    in one segment): status, headers (lower-case names), body of each."""
    data = b""
    responses = []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {data!r}")
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        responses.append((status, headers, data[:length]))
        data = data[length:]
    return responses


def json_error(body: bytes) -> str:
    payload = json.loads(body)
    assert list(payload) == ["error"], payload
    message: str = payload["error"]
    return message


def closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
