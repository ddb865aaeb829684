"""``python -m benchmarks.load_sources``: filter and prioritize latency with the metric source's
Prometheus healthy, hanging (SIGSTOP), down (stopped) and back (restarted), in one run.

A real Prometheus (Debian's, through tests/load/prometheus_server.py) scrapes per-node load
series for the 8 nodes of the recorded v1.30 full-node requests of pod web-1. Two real
``extender serve`` run side by side: one with load-threshold, least-loaded and
target-load-packing reading that Prometheus (``refreshInterval: 1s``, ``timeout: 1s``), and a
baseline with the same policy minus the load rules and the source. Every phase interleaves
rounds of both servers and both verbs, one keep-alive connection per server (as
kube-scheduler keeps one per extender), and reads the source's /healthz on that same
connection (so from the worker that answered) before and after, to show the phase was what
it says. Report ratios to the healthy phase: the machine is shared, absolute times drift.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.service import RunningService, serve
from tests.load.prometheus_server import Prometheus, Target, prometheus

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests/fixtures/kube-scheduler-v1.30/full-nodes"
BODIES = {
    "filter": (RECORDED / "00001-filter-web-1.request.json").read_bytes(),
    "prioritize": (RECORDED / "00002-prioritize-web-1.request.json").read_bytes(),
}
NODES = [f"node-{i:05d}" for i in range(8)]
#: node -> cpu % (5m, max 1h, max 1d), memory % (5m, max 1h, max 1d); node-00001 is over the cpu threshold
VALUES: dict[str, tuple[float, ...]] = {
    "node-00000": (20, 30, 40, 10, 20, 30),
    "node-00001": (90, 80, 70, 50, 50, 50),
    "node-00002": (50, 50, 50, 20, 20, 20),
    "node-00003": (10, 10, 10, 80, 80, 80),
    "node-00004": (35, 35, 35, 35, 35, 35),
    "node-00005": (60, 60, 60, 10, 10, 10),
    "node-00006": (45, 45, 45, 45, 45, 45),
    "node-00007": (5, 5, 5, 5, 5, 5),
}
KEYS = ("cpu_usage_avg_5m", "cpu_usage_max_avg_1h", "cpu_usage_max_avg_1d",
        "mem_usage_avg_5m", "mem_usage_max_avg_1h", "mem_usage_max_avg_1d")
OVER_THRESHOLD = "node-00001"
PHASES = ("healthy", "hanging", "down", "back")
SERVERS = ("baseline", "load")

BASE_RULES = """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
{load_predicates}
priorities:
- type: node-metadata
  params: {source: creationTimestamp, strategy: newest}
{load_priorities}
"""
LOAD_PREDICATES = """- type: load-threshold
  params:
    onStale: allow
    thresholds:
    - {metric: cpu_usage_avg_5m, max: 80}
    - {metric: mem_usage_avg_5m, max: 85}"""
LOAD_PRIORITIES = """- type: least-loaded
  params: {onStale: neutral}
- type: target-load-packing"""


def exposition() -> str:
    """The exporter's body: one gauge per key, a series per node."""
    lines = []
    for index, key in enumerate(KEYS):
        lines.append(f"# TYPE bench_{key} gauge")
        lines.extend(f'bench_{key}{{node="{node}"}} {values[index]}' for node, values in VALUES.items())
    return "\n".join(lines) + "\n"


def policy(prometheus_url: str | None) -> str:
    """The load-aware policy reading ``prometheus_url``, or (None) the baseline without load rules."""
    if prometheus_url is None:
        return "version: 1\n" + BASE_RULES.replace("{load_predicates}\n", "").replace("{load_priorities}\n", "")
    queries = "\n".join(f"      {key}: bench_{key}" for key in KEYS)
    source = (f"sources:\n  prometheus:\n    type: prometheus\n    url: {prometheus_url}\n"
              f"    refreshInterval: 1s\n    timeout: 1s\n    queries:\n{queries}\n")
    rules = BASE_RULES.replace("{load_predicates}", LOAD_PREDICATES).replace("{load_priorities}", LOAD_PRIORITIES)
    return "version: 1\n" + source + rules


class Client:
    """One keep-alive connection to a server; records every answer's status and validity."""

    def __init__(self, service: RunningService) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds) of one request, the connection reused."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started

    def source(self) -> dict[str, Any]:
        """The Prometheus source's /healthz report (empty for the baseline, which has none)."""
        status, data, _ = self.request("GET", "/healthz")
        assert status == 200, data[:200]
        report: dict[str, Any] = json.loads(data).get("sources", {}).get("prometheus", {})
        return report

    def close(self) -> None:
        self.conn.close()


def valid(verb: str, data: bytes) -> tuple[bool, bool]:
    """(the answer is a well-formed reply for the 8 nodes, the load rule rejected node-00001)."""
    try:
        answer = json.loads(data)
        if verb == "filter":
            passed = [node["metadata"]["name"] for node in answer["Nodes"]["items"]]
            failed = {**(answer.get("FailedNodes") or {}), **(answer.get("FailedAndUnresolvableNodes") or {})}
            ok = not answer.get("Error") and sorted([*passed, *failed]) == NODES
            return ok, OVER_THRESHOLD in failed
        hosts = sorted(entry["Host"] for entry in answer)
        return hosts == NODES and all(0 <= entry["Score"] <= 10 for entry in answer), False
    except (ValueError, KeyError, TypeError):
        return False, False


@dataclass
class Cell:
    """One phase x server x verb: latencies and what the answers were."""

    samples: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    invalid: int = 0
    load_rejections: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered) + 0.5) - 1))] * 1000


@dataclass
class Phase:
    """One Prometheus state: per server and verb a cell, and the source's health around it."""

    name: str
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    health_before: dict[str, Any] = field(default_factory=dict)
    health_after: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def wait_for(client: Client, check: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    """Poll the source's health until ``check`` holds; the report that held."""
    deadline = time.monotonic() + timeout
    while True:
        report = client.source()
        if check(report):
            return report
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not reached in {timeout:g}s, source reports {report}")
        time.sleep(0.1)


def measure(name: str, clients: dict[str, Client], requests: int, rounds: int, seconds: float) -> Phase:
    """``requests`` per server and verb, in ``rounds`` interleaved rounds spread over ``seconds``."""
    phase = Phase(name, {server: {verb: Cell() for verb in BODIES} for server in clients})
    phase.health_before = clients["load"].source()
    started = time.monotonic()
    per_round = max(1, requests // rounds)
    for index in range(rounds):
        for server, client in clients.items():
            for verb, body in BODIES.items():
                cell = phase.cells[server][verb]
                for _ in range(per_round):
                    status, data, took = client.request("POST", f"/scheduler/{verb}", body)
                    cell.samples.append(took)
                    cell.statuses[status] = cell.statuses.get(status, 0) + 1
                    ok, rejected = valid(verb, data) if status == 200 else (False, False)
                    cell.invalid += not ok
                    cell.load_rejections += rejected
        pause = started + seconds * (index + 1) / rounds - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    phase.seconds = time.monotonic() - started
    phase.health_after = clients["load"].source()
    return phase


def _timed_out(report: dict[str, Any]) -> bool:
    return "timed out" in (report.get("lastError") or "")


def _refused(report: dict[str, Any]) -> bool:
    error = report.get("lastError") or ""
    return bool(error) and "timed out" not in error


def _fresh(report: dict[str, Any]) -> bool:
    return (report.get("fetches", 0) >= 1 and report.get("lastError") is None
            and all(count == len(NODES) for count in report.get("series", {}).values()))


@contextmanager
def servers(prom: Prometheus, tmp: Path) -> Iterator[dict[str, Client]]:
    """The baseline and the load-aware ``extender serve`` (2 workers x 4 threads, as shipped), a client each."""
    (tmp / "baseline.yaml").write_text(policy(None))
    (tmp / "load.yaml").write_text(policy(prom.url))
    with serve(tmp / "baseline.yaml") as baseline, serve(tmp / "load.yaml") as load:
        clients = {"baseline": Client(baseline), "load": Client(load)}
        try:
            yield clients
        finally:
            for client in clients.values():
                client.close()


def run(requests: int = 300, rounds: int = 10, seconds: float = 8.0, warmup: int = 20) -> dict[str, Any]:
    """The four phases in one run; ``seconds`` is each phase's minimum length (hanging and down
    need several refreshes: each failed one takes ``timeout`` + ``refreshInterval``, ~2 s)."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmpdir:
        tmp = Path(tmpdir)
        with prometheus(tmp / "prometheus", (Target("nodes", {}, exposition),)) as prom, servers(prom, tmp) as clients:
            load = clients["load"]
            wait_for(load, _fresh, 30, "first refresh")
            for client in clients.values():
                for verb, body in BODIES.items():
                    for _ in range(warmup):
                        client.request("POST", f"/scheduler/{verb}", body)
            phases = [measure("healthy", clients, requests, rounds, seconds)]
            prom.pause()
            try:
                wait_for(load, _timed_out, 10, "a timed-out refresh with Prometheus stopped by SIGSTOP")
                phases.append(measure("hanging", clients, requests, rounds, seconds))
            finally:
                prom.stop()  # resumes it first, or SIGTERM would wait
            try:
                wait_for(load, _refused, 10, "a refused refresh with Prometheus down")
                phases.append(measure("down", clients, requests, rounds, seconds))
            finally:
                prom.start()
            wait_for(load, _fresh, 30, "a good refresh after the restart")
            phases.append(measure("back", clients, requests, rounds, seconds))
    return {
        "requests": requests, "rounds": rounds, "seconds": seconds,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "phases": [_summary(phase) for phase in phases],
    }


def _health(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in ("lastError", "consecutiveFailures", "fetches", "lastSuccessAgeSeconds")}


def _summary(phase: Phase) -> dict[str, Any]:
    return {
        "phase": phase.name,
        "seconds": round(phase.seconds, 2),
        "health_before": _health(phase.health_before),
        "health_after": _health(phase.health_after),
        "cells": {
            server: {verb: {"p50_ms": round(c.p50_ms, 3), "p99_ms": round(c.p99_ms, 3), "requests": len(c.samples),
                            "statuses": {str(k): v for k, v in c.statuses.items()}, "invalid": c.invalid,
                            "load_rejections": c.load_rejections}
                     for verb, c in cells.items()}
            for server, cells in phase.cells.items()
        },
    }


def table(report: dict[str, Any]) -> str:
    """Markdown: per phase, server and verb, absolute ms and ratios to the same row's healthy phase."""
    healthy = report["phases"][0]["cells"]
    lines = [
        f"{report['requests']} requests per phase, server and verb (recorded v1.30 web-1, 8 full nodes), "
        f"{report['rounds']} interleaved rounds over >= {report['seconds']:g} s; "
        f"load average {report['loadavg_before']} -> {report['loadavg_after']} on {report['cores']} cores",
        "",
        "| phase | server | verb | p50 ms | p99 ms | p50 / healthy p50 | p99 / healthy p99 | load p50 / baseline p50 "
        "| answers (200 / invalid) | node-00001 rejected by load | source after: lastError | consecutiveFailures before -> after | fetches |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in report["phases"]:
        before, after = phase["health_before"], phase["health_after"]
        for server in SERVERS:
            for verb in BODIES:
                c = phase["cells"][server][verb]
                h = healthy[server][verb]
                base = phase["cells"]["baseline"][verb]["p50_ms"]
                versus = f"{c['p50_ms'] / base:.2f}" if server == "load" else ""
                source = (f"| {after['lastError'] or '-'} | {before['consecutiveFailures']} -> {after['consecutiveFailures']} "
                          f"| {before['fetches']} -> {after['fetches']} |") if server == "load" else "| | | |"
                rejected = f"{c['load_rejections']}" if server == "load" and verb == "filter" else ""
                lines.append(
                    f"| {phase['phase']} | {server} | {verb} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} "
                    f"| {c['p50_ms'] / h['p50_ms']:.2f} | {c['p99_ms'] / h['p99_ms']:.2f} | {versus} "
                    f"| {c['statuses'].get('200', 0)} / {c['invalid']} | {rejected} {source}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_sources", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per phase, server and verb (default 300)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per phase (default 10)")
    parser.add_argument("--seconds", type=float, default=8.0, help="minimum length of each phase (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    report = run(args.requests, args.rounds, args.seconds)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = all(cell["invalid"] == 0 for phase in report["phases"] for cells in phase["cells"].values() for cell in cells.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
