"""``python -m benchmarks.soak``: a bounded run of mixed requests; memory and descriptors flat.

The service runs as shipped (``extender serve``, 2 workers x 4 threads) in names mode with a
node cache and bind, against the fake API server, so every verb of both modes is served:
recorded full-node and names-mode filter/prioritize/preempt requests, binds, probes, and
malformed requests (truncated, nested, wrong method, unknown verb, wrong content type, too
large), while a few clients trickle their bodies and are refused. Several clients send at
once over keep-alive connections, now and then over a fresh one. Every answer is checked
(status and shape); anything else is an unexpected error. RSS and open file descriptors of
each server process are sampled along the way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import payloads
from benchmarks.service import RunningService, serve
from tests.conftest import fixture, scheduler_fixtures

ROOT = Path(__file__).resolve().parents[1]
POLICY = """
predicates:
- type: node-condition
  params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}
priorities:
- type: node-metadata
  params: {source: creationTimestamp, strategy: newest}
bind: {enabled: true}
"""
MAX_BODY = 4 * 1024 * 1024
Check = Callable[[int, bytes], bool]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _filter_ok(status: int, body: bytes) -> bool:
    reply = _json(body)
    return status == 200 and isinstance(reply, dict) and (reply.get("Nodes") is not None or reply.get("NodeNames") is not None)


def _prioritize_ok(status: int, body: bytes) -> bool:
    reply = _json(body)
    return status == 200 and isinstance(reply, list) and all(type(h.get("Score")) is int and 0 <= h["Score"] <= 10 for h in reply)


def _preempt_ok(status: int, body: bytes) -> bool:
    reply = _json(body)
    return status == 200 and isinstance(reply, dict) and isinstance(reply.get("NodeNameToMetaVictims"), dict)


def _bind_ok(status: int, body: bytes) -> bool:
    reply = _json(body)
    return status == 200 and reply == {"Error": ""}


def _bind_error(text: str) -> Check:
    def check(status: int, body: bytes) -> bool:
        reply = _json(body)
        return status == 200 and isinstance(reply, dict) and text in reply.get("Error", "")

    return check


def _error(expected: int) -> Check:
    def check(status: int, body: bytes) -> bool:
        reply = _json(body)
        return status == expected and isinstance(reply, dict) and isinstance(reply.get("error"), str)

    return check


def _probe(status: int, body: bytes) -> bool:
    return status == 200 and isinstance(_json(body), dict)


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix: how often, what is sent, what a right answer is."""

    name: str
    weight: int
    method: str
    path: str
    body: bytes
    check: Check
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)


def mix(pods: dict[tuple[str, str], str]) -> list[Kind]:
    """The requests to send; ``pods`` are the fake API server's pods' UIDs by namespace/name."""
    kinds: list[Kind] = []
    full = [p for p in scheduler_fixtures("full-nodes")]
    for path in full:
        verb = path.name.split("-")[1]
        check = {"filter": _filter_ok, "prioritize": _prioritize_ok, "preempt": _preempt_ok}[verb]
        kinds.append(Kind(f"full {verb}", {"filter": 4, "prioritize": 3, "preempt": 2}[verb], "POST", f"/scheduler/{verb}", path.read_bytes(), check))
    kinds.append(Kind("full filter 200 nodes", 3, "POST", "/scheduler/filter", payloads.full_nodes(200).body, _filter_ok))
    for version in ("kube-scheduler-v1.24", "kube-scheduler-v1.30"):
        kinds.append(Kind("names filter", 12, "POST", "/scheduler/filter", fixture(version, "node-cache", "00001-filter-gpu-1"), _filter_ok))
        kinds.append(Kind("names prioritize", 10, "POST", "/scheduler/prioritize", fixture(version, "node-cache", "00002-prioritize-gpu-1"), _prioritize_ok))
    # The recorded binds name gpu-1 with each run's own UID; the fake API server holds one gpu-1.
    # Bound once, then again (kube-scheduler retrying a bind whose answer it lost): success both times.
    bind = {"PodName": "gpu-1", "PodNamespace": "default", "PodUID": pods[("default", "gpu-1")], "Node": "node-00002"}
    kinds.append(Kind("bind", 5, "POST", "/scheduler/bind", json.dumps(bind).encode(), _bind_ok))
    gone = {**bind, "PodName": "deleted-meanwhile", "PodUID": "0000"}
    kinds.append(Kind("bind of a deleted pod", 1, "POST", "/scheduler/bind", json.dumps(gone).encode(), _bind_error("not found")))
    kinds.append(Kind("names preempt", 4, "POST", "/scheduler/preempt", payloads.preempt_meta(8, 8), _preempt_ok))
    for probe in ("/healthz", "/readyz", "/version"):
        kinds.append(Kind(f"GET {probe}", 2, "GET", probe, b"", _probe))
    names = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
    malformed = [
        ("truncated JSON", "/scheduler/filter", names[: len(names) // 2], 400, ()),
        ("nested JSON", "/scheduler/prioritize", b'{"Pod":' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, ()),
        ("not JSON", "/scheduler/bind", b"\xff\xfe not json", 400, ()),
        ("unknown verb", "/scheduler/explode", names, 404, ()),
        ("text/plain", "/scheduler/filter", names, 415, (("Content-Type", "text/plain"),)),
    ]
    for name, path, body, status, headers in malformed:
        kinds.append(Kind(name, 1, "POST", path, body, _error(status), headers or (("Content-Type", "application/json"),)))
    kinds.append(Kind("wrong method", 1, "GET", "/scheduler/filter", b"", _error(405)))
    return kinds


@dataclass
class Sample:
    after: int
    rss_mib: dict[str, float]
    fds: dict[str, int]


@dataclass
class Report:
    requests: int = 0
    seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    oversize_refused: int = 0
    tricklers_refused: int = 0
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        first, last = self.samples[0], self.samples[-1]
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "req_per_s": round(self.requests / self.seconds) if self.seconds else 0,
            "unexpected_errors": len(self.unexpected),
            "first_unexpected": self.unexpected[:5],
            "oversize_refused_413": self.oversize_refused,
            "tricklers_refused": self.tricklers_refused,
            "rss_mib_first_last": {p: (first.rss_mib[p], last.rss_mib.get(p)) for p in first.rss_mib},
            "fds_first_last": {p: (first.fds[p], last.fds.get(p)) for p in first.fds},
            "rss_growth_mib_max": max(last.rss_mib.get(p, 0) - first.rss_mib[p] for p in first.rss_mib),
            "fd_growth_max": max(last.fds.get(p, 0) - first.fds[p] for p in first.fds),
        }


def _processes(service: RunningService) -> dict[str, int]:
    return {"master": service.process.pid, **{f"worker-{i}": pid for i, pid in enumerate(sorted(service.worker_pids()))}}


def _sample(service: RunningService, after: int) -> Sample:
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    for name, pid in _processes(service).items():
        status = Path(f"/proc/{pid}/status").read_text()
        rss[name] = round(int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024, 1)
        fds[name] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return Sample(after, rss, fds)


class Client(threading.Thread):
    """Sends ``count`` requests drawn from the mix over a keep-alive connection."""

    def __init__(self, port: int, kinds: list[Kind], count: int, seed: int, report: Report, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.port, self.kinds, self.count, self.report, self.lock = port, kinds, count, report, lock
        self.random = random.Random(seed)
        self.weights = [k.weight for k in kinds]

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        return conn

    def run(self) -> None:
        conn = self._connect()
        for i in range(self.count):
            kind = self.random.choices(self.kinds, self.weights)[0]
            fresh = self.random.random() < 0.02  # a probe, a restarted scheduler: a new connection
            target = self._connect() if fresh else conn
            try:
                target.request(kind.method, kind.path, body=kind.body or None, headers=dict(kind.headers))
                response = target.getresponse()
                body = response.read()
                ok = kind.check(response.status, body)
                closing = response.getheader("Connection", "").lower() == "close"
            except (OSError, http.client.HTTPException) as exc:
                ok, closing, body = False, True, repr(exc).encode()
                response = None
            with self.lock:
                self.report.requests += 1
                self.report.by_kind[kind.name] += 1
                if not ok:
                    status = response.status if response is not None else "no answer"
                    self.report.unexpected.append(f"{kind.name}: {status} {body[:160]!r}")
            if fresh:
                target.close()
            elif closing:
                conn.close()
                conn = self._connect()
            if i % 97 == 0:
                self._oversize()
        conn.close()

    def _oversize(self) -> None:
        """A body over the limit, announced with Expect: 100-continue: refused from its head."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 2))
            answer = sock.recv(4096)
        with self.lock:
            if answer.startswith(b"HTTP/1.1 413"):
                self.report.oversize_refused += 1
            else:
                self.report.unexpected.append(f"oversize: {answer[:100]!r}")


class Tricklers(threading.Thread):
    """``count`` connections trickling a body a byte at a time, reopened when refused;
    :meth:`paused` closes them all for a moment (so descriptors can be counted at rest)."""

    HEAD = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n{"

    def __init__(self, port: int, count: int, report: Report) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.report = port, count, report
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.idle = threading.Event()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(self.HEAD)
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        socks: list[socket.socket] = []
        while not self.stop.wait(0.25):
            if self.pause.is_set():
                for sock in socks:
                    sock.close()
                socks = []
                self.idle.set()
                continue
            self.idle.clear()
            socks += [self._open() for _ in range(self.count - len(socks))]
            for i, sock in enumerate(socks):
                try:
                    sock.send(b" ")
                    sock.recv(4096)  # an answer (408) or end of stream: refused
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                self.report.tricklers_refused += 1
                sock.close()
                socks[i] = self._open()
        for sock in socks:
            sock.close()

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.pause.set()
        self.idle.wait(5)
        try:
            yield
        finally:
            self.pause.clear()


def run(total: int, clients: int = 4, slow: int = 10, samples: int = 10, log: Callable[[str], None] = print) -> Report:
    """Serve ``total`` requests from ``clients`` at once; ``samples`` RSS/fd readings."""
    from tests.kube.fake_apiserver import FakeApiServer

    report = Report()
    lock = threading.Lock()
    with FakeApiServer() as apiserver, tempfile.TemporaryDirectory() as tmp:
        kinds = mix({key: pod["metadata"]["uid"] for key, pod in apiserver.pods.items()})
        kubeconfig, policy = Path(tmp) / "kubeconfig", Path(tmp) / "policy.yaml"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "soak",
            "clusters": [{"name": "soak", "cluster": {"server": apiserver.url}}],
            "users": [{"name": "soak", "user": {"token": "test-token"}}],
            "contexts": [{"name": "soak", "context": {"cluster": "soak", "user": "soak"}}],
        }))  # fmt: skip
        policy.write_text(POLICY)
        args = ("--node-cache", "--kubeconfig", str(kubeconfig), "--max-body-bytes", str(MAX_BODY), "--read-timeout", "0.5")
        with serve(policy, *args) as service:
            slow_clients = Tricklers(service.port, slow, report)
            slow_clients.start()

            def sample() -> None:
                # At rest: every client connection closed and seen closed by the server.
                with slow_clients.paused():
                    time.sleep(0.5)
                    report.samples.append(_sample(service, report.requests))

            try:
                warm = max(200, total // 20)
                _drive(service.port, kinds, warm, clients, Report(), lock)  # warm-up, not counted
                sample()
                started = time.perf_counter()
                step = max(1, total // samples)
                for done in range(0, total, step):
                    _drive(service.port, kinds, min(step, total - done), clients, report, lock)
                    report.seconds += time.perf_counter() - started
                    sample()
                    apiserver.requests.clear()  # the fake's own log, not the server's memory
                    log(f"{report.requests} requests, {len(report.unexpected)} unexpected; "
                        f"RSS {report.samples[-1].rss_mib} MiB; fds {report.samples[-1].fds}")
                    started = time.perf_counter()
            finally:
                slow_clients.stop.set()
                slow_clients.join()
    return report


def _drive(port: int, kinds: list[Kind], count: int, clients: int, report: Report, lock: threading.Lock) -> None:
    per = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    threads = [Client(port, kinds, n, seed=hash((count, i, len(report.samples))), report=report, lock=lock) for i, n in enumerate(per)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests to send (default 100000)")
    parser.add_argument("--clients", type=int, default=4, help="clients sending at once (default 4)")
    parser.add_argument("--slow", type=int, default=10, help="trickling connections kept open throughout (default 10)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args()
    report = run(args.requests, args.clients, args.slow, log=lambda line: print(line, file=sys.stderr))
    summary = report.summary()
    summary["by_kind"] = dict(sorted(report.by_kind.items()))
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "samples": [asdict(s) for s in report.samples]}, indent=2))
    return 0 if not report.unexpected else 1


if __name__ == "__main__":
    raise SystemExit(main())
