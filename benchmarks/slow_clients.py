"""``python -m benchmarks.slow_clients``: a normal filter request while 100 clients trickle.

Each attacking connection sends a request head announcing a 100 kB body, then one byte of
it every 0.2 s, and is reopened as soon as the server closes it, so 100 are always open.
Meanwhile a kube-scheduler-like client sends the recorded filter request (8 nodes) one at a
time over a keep-alive connection, and a second one over a fresh connection per request.
Each server configuration is measured idle and under attack in the same run; the ratio
and the difference are what to compare (the machine is shared: absolute times drift).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.service import free_port, running

ROOT = Path(__file__).resolve().parents[1]
BODY = (ROOT / "tests/fixtures/kube-scheduler-v1.30/full-nodes/00001-filter-web-1.request.json").read_bytes()
HEAD = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
REQUEST = HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
TRICKLE_HEAD = HEAD + b"Content-Length: 100000\r\n\r\n{"
#: a request not answered in this long counts as stalled
TIMEOUT = 10.0


@dataclass
class Config:
    label: str
    #: gunicorn arguments after the shipped config file (None: ``extender serve`` as shipped)
    gunicorn: list[str] | None
    needs: str | None = None


CONFIGS = [
    Config("shipped: extender serve (buffering worker, 2 x 4)", None),
    Config("before: gthread 2 x 4", ["-k", "gthread", "-w", "2", "--threads", "4"]),
    Config("gthread 2 x 64 (a thread per attacker)", ["-k", "gthread", "-w", "2", "--threads", "64"]),
    Config("gevent 2 workers", ["-k", "gevent", "-w", "2"], needs="gevent"),
]


@dataclass
class Result:
    label: str
    idle_p50_ms: float | None = None
    idle_p99_ms: float | None = None
    attack_p50_ms: float | None = None
    attack_p99_ms: float | None = None
    fresh_p50_ms: float | None = None
    answered: int = 0
    stalled: int = 0
    attackers_refused: int = 0
    note: str = ""


class Trickler(threading.Thread):
    """Keeps ``count`` connections open, each trickling its body a byte at a time."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.port, self.count = port, count
        self.stop = threading.Event()
        self.refused = 0
        self.socks: list[socket.socket | None] = []

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(TRICKLE_HEAD)
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def run(self) -> None:
        self.socks = [self._open() for _ in range(self.count)]
        while not self.stop.wait(0.2):
            for i, sock in enumerate(self.socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b" ")
                    try:
                        sock.recv(4096)  # an answer (a 408) or end of stream: the server refused it
                    except BlockingIOError:
                        continue  # still open, still trickling
                    self.refused += 1
                    sock.close()
                    self.socks[i] = self._open()
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.socks[i] = self._open()
        for sock in self.socks:
            if sock is not None:
                sock.close()


def _post(sock: socket.socket) -> float:
    started = time.perf_counter()
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        body += chunk
    return time.perf_counter() - started


def measure(port: int, requests: int, result: Result, attack: bool, seconds: float = 0.0) -> list[float]:
    """Sequential requests on one keep-alive connection (and, under attack, on fresh ones):
    ``requests`` of them, spread over at least ``seconds``."""
    samples: list[float] = []
    fresh: list[float] = []
    pause = seconds / requests
    keep = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        for _ in range(requests):
            time.sleep(pause)
            try:
                samples.append(_post(keep))
                result.answered += 1
            except (OSError, ConnectionError):
                result.stalled += 1
                keep.close()
                keep = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                if result.stalled >= 3:
                    result.note = f"gave up after 3 requests unanswered within {TIMEOUT:g} s"
                    break
            if attack and len(fresh) < requests // 5:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as one:
                        fresh.append(_post(one))
                except (OSError, ConnectionError):
                    result.stalled += 1
    finally:
        keep.close()
    if fresh:
        result.fresh_p50_ms = statistics.median(fresh) * 1000
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


def run(config: Config, requests: int, attackers: int, seconds: float) -> Result:
    result = Result(config.label)
    if config.needs and importlib.util.find_spec(config.needs) is None:
        result.note = f"not measured: {config.needs} is not installed (pip install 'gunicorn[{config.needs}]')"
        return result
    port = free_port()
    if config.gunicorn is None:
        command = [sys.executable, "-m", "extender", "serve", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "gunicorn", "-c", "python:extender.gunicorn_conf", *config.gunicorn,
                   "-b", f"127.0.0.1:{port}", "extender.web:create_app()"]
    with running(command, port):
        measure(port, 20, Result(""), attack=False)  # warm-up
        idle = measure(port, requests, result, attack=False)
        result.idle_p50_ms, result.idle_p99_ms = statistics.median(idle) * 1000, _p(idle, 99)
        trickler = Trickler(port, attackers)
        trickler.start()
        time.sleep(1.0 + attackers / 1000)
        # Long enough for attackers to be refused at their read timeout and come back, repeatedly.
        attacked = measure(port, requests, result, attack=True, seconds=seconds)
        trickler.stop.set()
        trickler.join()
        result.attackers_refused = trickler.refused
        if attacked:
            result.attack_p50_ms, result.attack_p99_ms = statistics.median(attacked) * 1000, _p(attacked, 99)
        return result


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slow_clients", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="filter requests per phase (default 300)")
    parser.add_argument(
        "--attackers", type=int, nargs="+", default=[8, 100, 2500],
        help="trickling connections, one run per count (default 8: all 2 x 4 threads; 100; 2500: more than 2 x 1000 connections)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each attacked phase (default 10)")
    parser.add_argument("--only", help="run only configurations whose label contains this")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.only or args.only in c.label]
    results = [(count, run(c, args.requests, count, args.seconds)) for count in args.attackers for c in configs]
    print(f"normal filter requests (recorded web-1, 8 nodes), {args.requests} per phase, attacked phase {args.seconds:g} s")
    print("| trickling conns | server | idle p50 / p99 ms | attacked p50 / p99 ms | p50 attacked - idle | fresh conn p50 ms | answered / stalled | attackers refused | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for count, r in results:
        delta = f"{r.attack_p50_ms - r.idle_p50_ms:+.2f} ms" if r.attack_p50_ms is not None and r.idle_p50_ms else "-"
        print(f"| {count} | {r.label} | {_ms(r.idle_p50_ms)} / {_ms(r.idle_p99_ms)} | {_ms(r.attack_p50_ms)} / {_ms(r.attack_p99_ms)} "
              f"| {delta} | {_ms(r.fresh_p50_ms)} | {r.answered} / {r.stalled} | {r.attackers_refused} | {r.note} |")
    if args.json:
        Path(args.json).write_text(json.dumps([{"attackers": n, **asdict(r)} for n, r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
