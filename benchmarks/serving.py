"""``python -m benchmarks.serving``: gunicorn worker class, workers and threads compared on
the extender's own requests, to choose the shipped configuration by measurement."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import payloads
from benchmarks.driver import concurrent, sequential
from benchmarks.service import free_port, running

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "deploy" / "extender" / "policy.yaml"
CONFIGS = [
    ("buffering w2 t4 (shipped)", ["-k", "extender.serving.worker.BufferingWorker", "-w", "2", "--threads", "4"]),
    ("gthread w2 t4", ["-k", "gthread", "-w", "2", "--threads", "4"]),
    ("gthread w2 t1", ["-k", "gthread", "-w", "2", "--threads", "1"]),
    ("gthread w1 t4", ["-k", "gthread", "-w", "1", "--threads", "4"]),
    ("sync w2", ["-k", "sync", "-w", "2"]),
]


def run(label: str, args: list[str], requests: int) -> list[str]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "python:extender.gunicorn_conf", *args,
               "-b", f"127.0.0.1:{port}", "extender.web:create_app()"]
    with running(command, port, env={"EXTENDER_POLICY": str(POLICY)}):
        big, small = payloads.full_nodes(1000).body, payloads.full_nodes(100).body
        cells = [label]
        try:
            lat = sequential(port, "/scheduler/prioritize", big, requests, warmup=3)
            cells.append(f"{lat.p50_ms:.1f} / {lat.p99_ms:.1f}")
            lat = sequential(port, "/scheduler/filter", small, requests * 5, warmup=3)
            cells.append(f"{lat.p50_ms:.2f} / {lat.p99_ms:.2f}")
            lat = concurrent(port, "/scheduler/prioritize", big, requests // 2, clients=4)
            cells.append(f"{lat.p50_ms:.1f} / {lat.p99_ms:.1f} / {lat.rate:.0f}")
            lat = concurrent(port, "/scheduler/filter", small, requests * 2, clients=4)
            cells.append(f"{lat.p50_ms:.2f} / {lat.p99_ms:.2f} / {lat.rate:.0f}")
        except RuntimeError as exc:  # sync closes every connection: the driver insists on keep-alive
            cells.extend([f"n/a: {exc}"] * (5 - len(cells)))
        return cells


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    header = ["config", "prioritize 1000 nodes, 1 client: p50 / p99 ms", "filter 100 nodes, 1 client: p50 / p99 ms",
              "prioritize 1000 nodes, 4 clients: p50 / p99 ms / req/s", "filter 100 nodes, 4 clients: p50 / p99 ms / req/s"]
    rows = [header] + [run(label, config, args.requests) for label, config in CONFIGS]
    for row in rows:
        print("| " + " | ".join(row) + " |")
        if row is header:
            print("|" + "|".join("---" for _ in row) + "|")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
