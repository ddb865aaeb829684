"""``python -m benchmarks.compare --before REV``: this checkout against an earlier revision,
side by side in one run (interleaved rounds), since absolute times on a shared machine move
by 2-3x from day to day. REV is checked out into a temporary git worktree and served with
this checkout's harness and interpreter, each server run in the tree it serves with
``PYTHONPATH`` pointing at it (the cwd comes first on a ``python -m`` sys.path, so
``PYTHONPATH`` alone would serve this checkout twice)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import payloads
from benchmarks.driver import sequential
from benchmarks.service import ROOT, imported_extender, serve, worktree

POLICY = ROOT / "deploy" / "extender" / "policy.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against (e.g. a tag or commit)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    from tests.kube.fake_apiserver import FakeApiServer
    from tests.kube.live import write_kubeconfig

    cases = {
        "full 100 filter": ("/scheduler/filter", payloads.full_nodes(100).body, 200),
        "full 1000 filter": ("/scheduler/filter", payloads.full_nodes(1000).body, 40),
        "full 1000 prioritize": ("/scheduler/prioritize", payloads.full_nodes(1000).body, 40),
        "names 500 filter": ("/scheduler/filter", payloads.names(500, 5000).body, 1000),
        "names 500 prioritize": ("/scheduler/prioritize", payloads.names(500, 5000).body, 1000),
    }
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with (tempfile.TemporaryDirectory() as tmp, FakeApiServer(nodes=payloads.cluster_nodes(5000), pods=[]) as api,
          worktree(args.before) as before):
        trees = {f"before ({args.before})": before, "now": ROOT}
        for label, tree in trees.items():
            print(f"{label}: extender from {imported_extender(tree).parent}", file=sys.stderr)
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", api.url)
        for round_ in range(args.rounds):
            for label, tree in trees.items():
                with serve(POLICY, "--node-cache", "--kubeconfig", str(kubeconfig), tree=tree) as service:
                    for name, (path, body, count) in cases.items():
                        lat = sequential(service.port, path, body, count, warmup=5)
                        results.setdefault(label, {}).setdefault(name, []).append((lat.p50_ms, lat.p99_ms))
                print(f"round {round_ + 1}: {label} done", file=sys.stderr)
    old, new = results[f"before ({args.before})"], results["now"]
    print(f"| case | before ({args.before}) p50 / p99 ms | now p50 / p99 ms | now / before (p50) |")
    print("|---|---|---|---|")
    for name in cases:
        b50, b99 = (statistics.median(x[i] for x in old[name]) for i in (0, 1))
        n50, n99 = (statistics.median(x[i] for x in new[name]) for i in (0, 1))
        print(f"| {name} | {b50:.2f} / {b99:.2f} | {n50:.2f} / {n99:.2f} | {n50 / b50:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
