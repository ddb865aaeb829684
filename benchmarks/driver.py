"""Drive the service like kube-scheduler: POSTs one at a time over a keep-alive connection."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Latencies:
    """Seconds per request, in the order they ran, and the wall time of the run."""

    samples: list[float]
    wall: float

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1000

    @property
    def rate(self) -> float:
        return len(self.samples) / self.wall


class Connection:
    """One HTTP/1.1 keep-alive connection, as Go's transport keeps one per extender."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.connect()
        self.local = self.conn.sock.getsockname()  # type: ignore[union-attr]

    def post(self, path: str, body: bytes) -> bytes:
        self.conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status} {data[:200]!r}")
        if response.getheader("Connection", "").lower() == "close":
            raise RuntimeError("the server closed the keep-alive connection")
        return data

    def close(self) -> None:
        self.conn.close()


def sequential(port: int, path: str, body: bytes, requests: int, warmup: int) -> Latencies:
    """``requests`` calls one after the other on one connection (after ``warmup`` unmeasured)."""
    conn = Connection(port)
    try:
        for _ in range(warmup):
            conn.post(path, body)
        samples = []
        started = time.perf_counter()
        for _ in range(requests):
            t0 = time.perf_counter()
            conn.post(path, body)
            samples.append(time.perf_counter() - t0)
        wall = time.perf_counter() - started
        assert conn.conn.sock is not None and conn.conn.sock.getsockname() == conn.local, "connection was replaced"
        return Latencies(samples, wall)
    finally:
        conn.close()


def concurrent(port: int, path: str, body: bytes, requests: int, clients: int) -> Latencies:
    """``clients`` connections each sending ``requests`` calls at once (several schedulers or
    profiles sharing one extender; prioritize overlapping bind)."""
    per_client: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        conn = Connection(port)
        try:
            conn.post(path, body)
            barrier.wait()
            for _ in range(requests):
                t0 = time.perf_counter()
                conn.post(path, body)
                per_client[index].append(time.perf_counter() - t0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Latencies([s for samples in per_client for s in samples], wall)
