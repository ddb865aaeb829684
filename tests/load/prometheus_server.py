"""The real Prometheus (Debian's /usr/bin/prometheus) on a loopback port, scraping an exporter
the test serves, and a fake Prometheus API for the faults a real one will not produce.

Prometheus' scrape manager applies target updates every 5 s, so the first scrape comes
about 5-6 s after start: start one per module (``scope="module"`` fixtures). A Prometheus
with no targets (only ``vector()`` queries, for auth and TLS) is ready in well under a second.
Scraping rather than backfilling (``promtool tsdb create-blocks-from openmetrics``) because the
recording rules must be evaluated on live samples anyway, and it is the path operators run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.test_server import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"

#: an exposition body, made at scrape time (so counters can follow the clock)
Body = Callable[[], str]


@dataclass(frozen=True)
class Target:
    """One scrape target: the labels Prometheus gives it (``instance`` may be any text: the
    exporter is reached at 127.0.0.1 whatever it says) and what it exposes."""

    name: str
    labels: Mapping[str, str]
    body: Body


class _Exporter(ThreadingHTTPServer):
    daemon_threads = True
    bodies: dict[str, Body]


class _ExporterHandler(BaseHTTPRequestHandler):
    server: _Exporter

    def do_GET(self) -> None:
        make = self.server.bodies.get(self.path.removeprefix("/metrics/"))
        if make is None:
            self.send_error(404)
            return
        body = make().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def exporter(targets: tuple[Target, ...]) -> Iterator[int]:
    """An exporter on loopback serving each target at ``/metrics/<name>``; yields its port."""
    server = _Exporter(("127.0.0.1", 0), _ExporterHandler)
    server.bodies = {t.name: t.body for t in targets}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    scheme: str
    log: Path
    verify: bool | str = True
    auth: tuple[str, str] | None = None
    args: list[str] = field(default_factory=list)
    cert: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = requests.post(
            f"{self.url}/api/v1/query", data={"query": expression}, verify=self.verify, auth=self.auth, cert=self.cert, timeout=10
        ).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def ready(self) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # InsecureRequestWarning: the harness may skip verification
            try:
                answer = requests.get(
                    f"{self.url}/-/ready", verify=self.verify, auth=self.auth, cert=self.cert, timeout=2
                )
            except requests.RequestException:
                return False
        return answer.status_code == 200

    def pause(self) -> None:
        """SIGSTOP: it accepts connections (the kernel does) but answers nothing."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a stopped process does not act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def start(self, timeout: float = 30) -> None:
        """(Re)start on the same port and storage, and wait until it is ready."""
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(self.args, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready in {timeout}s:\n{self.log.read_text()}")
            time.sleep(0.05)


@contextmanager
def prometheus(
    tmp: Path,
    targets: tuple[Target, ...] = (),
    *,
    rules: Path | None = None,
    web_config: Mapping[str, Any] | None = None,
    verify: bool | str = True,
    auth: tuple[str, str] | None = None,
    cert: tuple[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[Prometheus]:
    """A real Prometheus scraping ``targets`` every second (rules evaluated every second too),
    yielded once every target is up and its series are queryable."""
    tmp.mkdir(parents=True, exist_ok=True)
    with exporter(targets) as exporter_port:
        scrape_configs = [
            {
                "job_name": target.name,
                "metrics_path": f"/metrics/{target.name}",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"], "labels": dict(target.labels)}],
            }
            for target in targets
        ]
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        args = [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        if web_config is not None:
            (tmp / "web.yml").write_text(yaml.safe_dump(dict(web_config)))
            args.append(f"--web.config.file={tmp / 'web.yml'}")
        scheme = "https" if web_config and "tls_server_config" in web_config else "http"
        server = Prometheus(None, port, scheme, tmp / "prometheus.log", verify, auth, args, cert)  # type: ignore[arg-type]
        server.start(timeout)
        try:
            if targets:
                deadline = time.monotonic() + timeout
                while len(server.query("up == 1")) < len(targets):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"targets not up in {timeout}s: {server.query('up')}")
                    time.sleep(0.1)
            yield server
        finally:
            server.stop()


class FakePrometheus(ThreadingHTTPServer):
    """A loopback server answering ``/api/v1/query`` as told: ``answer`` is (status, content
    type, body), or ``trickle`` sends the body a byte every ``trickle`` seconds. ``seen`` holds
    the requests' headers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.answer: tuple[int, str, bytes] = ok([])
        self.trickle = 0.0
        self.require_token: str | None = None
        self.seen: list[Mapping[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def ok(result: list[dict[str, Any]]) -> tuple[int, str, bytes]:
    """A Prometheus success answer with these vector series."""
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return 200, "application/json", json.dumps(body).encode()


class _FakeHandler(BaseHTTPRequestHandler):
    server: FakePrometheus
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append(dict(self.headers))
        status, content_type, body = self.server.answer
        expected = self.server.require_token
        if expected is not None and self.headers.get("Authorization") != f"Bearer {expected}":
            status, content_type, body = 401, "text/plain", b"Unauthorized\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if self.server.trickle:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(self.server.trickle)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should on a trickle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def fake_prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
