"""``python -m benchmarks.fast_path_alternatives [--before REV] [--rounds 3] [--calls 2000]``:
the serving paths tried for issue 11's item 2, side by side in one run.

Each round serves, one after the other on the same fake API server (5000 nodes) and with
:mod:`benchmarks.cpu_per_call`'s policy, calls and CPU measurement: ``REV`` (a temporary
worktree; today's release by default none), then this checkout under each variant of
:mod:`benchmarks.variant_serve`: ``flask`` (no fast path), ``thin-wsgi`` (a WSGI function in
front of Flask), ``threads`` (the fast path, answered by a thread) and ``inline`` (what ships).
Rows are medians over the rounds; ratios are against the first column.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.cpu_per_call import Measured, calls, cluster, measure, server
from benchmarks.service import ROOT, RunningService, free_port, running, worktree
from benchmarks.variant_serve import VARIANTS


@contextmanager
def variant_server(kubeconfig: Path, variant: str) -> Iterator[RunningService]:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.variant_serve", "serve", "--port", str(port), "--policy",
               str(kubeconfig.with_name("policy.yaml")), "--node-cache", "--kubeconfig", str(kubeconfig),
               "--log-level", "info"]
    with running(command, port, env={"BENCH_VARIANT": variant}, workers=1, ready_timeout=300, cwd=ROOT) as service:
        yield service


def run(before: str | None, rounds: int, count: int, sizes: list[int], nodes: int = 5000,
        warmup: int = 100) -> dict[str, dict[str, list[Measured]]]:
    """Per label (``before``, then each variant), per call name: the rounds' measurements."""
    cases = calls(sizes)
    results: dict[str, dict[str, list[Measured]]] = {}
    with cluster(max(nodes, *sizes)) as kubeconfig, (worktree(before) if before else _none()) as tree:
        for round_ in range(rounds):
            labels: list[tuple[str, object]] = ([("before", tree)] if tree else []) + [(v, v) for v in VARIANTS]
            for label, what in labels:
                context = server(kubeconfig, "info", tree=what) if isinstance(what, Path) else variant_server(kubeconfig, str(what))
                with context as service:
                    for case in cases:
                        results.setdefault(label, {}).setdefault(case.name, []).append(measure(service, case, count, warmup))
                print(f"round {round_ + 1}/{rounds}: {label} done", file=sys.stderr)
    return results


@contextmanager
def _none() -> Iterator[None]:
    yield None


def table(results: dict[str, dict[str, list[Measured]]]) -> str:
    labels = list(results)
    names = list(results[labels[0]])
    median = {label: {name: (statistics.median(m.cpu_ms_per_call for m in ms), statistics.median(m.p50_ms for m in ms),
                             statistics.median(m.p99_ms for m in ms), sum(m.malformed for m in ms))
                      for name, ms in by_name.items()} for label, by_name in results.items()}
    lines = ["CPU ms/call (ratio to " + labels[0] + "), p50 / p99 ms; median of the rounds", "",
             f"{'call':<24}" + "".join(f"{label:>26}" for label in labels)]
    for name in names:
        base = median[labels[0]][name][0]
        cells = []
        for label in labels:
            cpu, p50, p99, bad = median[label][name]
            ratio = f"{cpu / base:4.2f}" if base else "  - "  # a few calls may round to 0 CPU ticks
            cells.append(f"{cpu:6.3f} ({ratio}) {p50:4.2f}/{p99:5.2f}{'!' if bad else ' '}")
        lines.append(f"{name:<24}" + "".join(f"{c:>26}" for c in cells))
    lines.append("")
    lines.append("! marks a row with answers that were not 200 and well-formed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fast_path_alternatives", description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision served first in each round (e.g. today's release)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sizes", default="232", help="NodeNames counts, comma-separated")
    args = parser.parse_args(argv)
    print(table(run(args.before, args.rounds, args.calls, [int(s) for s in args.sizes.split(",")])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
