"""``python -m benchmarks.cpu_per_call [--calls 3000] [--sizes 50,232,500,5000] [--before REV]``: the
server CPU per call of the names-mode verbs, the floor of the serving stack, and where it goes.

Issue 11's metric: CPU per call = utime + stime of the gunicorn processes (master and every
worker, from /proc/<pid>/stat) over ``--calls`` calls on one keep-alive connection
(http.client), divided by the calls; p50/p99 latency of the same calls beside it.

The server is a real ``extender serve --node-cache`` (names mode, shipped settings: one worker
with a node cache, 4 threads) whose node cache lists and watches the fake API server
(tests/kube/fake_apiserver.py) holding 5000 nodes replicated from the recorded ones
(:func:`benchmarks.payloads.cluster_nodes`). Requests are the recorded names-mode filter and
prioritize of pod gpu-1 (tests/fixtures/kube-scheduler-v1.30/node-cache) with ``NodeNames``
set to the first N cached names. The policy is issue 11's 3-predicate + 1-priority shape,
from the built-in non-load rules of deploy/extender/policy.yaml: node-condition (Ready),
node-maintenance (labels, annotation, window), node-selector-policy (the gpu/batch pools;
gpu-1 in namespace default matches no mapping, so every node is checked against the
exclusive gpu pool) and node-metadata (newest creationTimestamp). The floor: ``GET /healthz``
and a filter with an empty ``NodeNames`` on the same server.

Full-node mode is in the same run: filter and prioritize with full Node objects in the body
(:func:`benchmarks.payloads.full_nodes`) at 100 and 1000 nodes (``--full-sizes``), with fewer
calls (``--full-calls``, 200 and 40), on the same server.

``--before REV`` serves REV too, side by side: REV is checked out into a temporary detached
git worktree (removed at the end, on error too) and served by this checkout's harness and
interpreter, the server run with the worktree as cwd and ``PYTHONPATH`` (``python -m`` puts
the cwd first on sys.path, so ``PYTHONPATH`` alone would serve this checkout; the report
shows where each tree's ``extender`` is imported from and each server process's cwd, from
/proc). ``--rounds K`` (3 with ``--before``) interleaves: before, now, before, now, ...,
each a fresh server of that tree on the same fake API server measuring every call; rows are
medians over the rounds of CPU ms/call, p50 and p99, with now/before CPU ratios, and the
issue's target line: p99 at 500 names now / p50 at 500 names before (<= 1 is met).

The breakdown (``--profile-names``, 232 by default, none with ``--before``; this checkout only) comes from a second server started
through :mod:`benchmarks.profiled_serve`: the same command, its worker under yappi with the
CPU clock over every thread, switched on after the warm-up and off after the calls, no
product code changed. The profile's time is grouped by module (see :data:`BUCKETS`): what
is entered from outside a group counts for it, so each row is inclusive of what it calls
(msgspec's C decoding is inside "decode"). Nested groups are subtracted from their outer
one: WSGI/Flask = the Flask app minus the body read and the answer (web/verbs.py,
web/probes.py, which the worker's fast path also calls without Flask); the answer's own row
is it minus the verb; the verb's own code = the service minus decode, node-cache lookup,
engine, encode and logging; the gunicorn worker = everything outside the app, gunicorn's
HTTP code and the fast path (serving/fastpath.py), each of those its own row. Caveat: yappi's hooks
cost several times the code they measure (the "profiled CPU/call" column shows how much),
and that overhead lands most on the buckets with many small Python calls (gunicorn, Flask,
the engine's rule loops), least on C calls (msgspec): read the shares, not the ms.

Results, and the alternatives tried for the serving path (:mod:`benchmarks.fast_path_alternatives`),
are in the README under "Names mode: server CPU per call". Run-to-run drift on this machine is
20-30 %: compare releases with ``--before``, in one run, not across runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import payloads
from benchmarks.service import ROOT, RunningService, free_port, imported_extender, running, tree_env, worktree

VERBS = ("filter", "prioritize")
POLICY = """version: 1
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
- type: node-maintenance
  onError: deny
  params:
    labels: [{key: extender.dev/maintenance}, {key: example.com/lifecycle, values: [draining, retiring]}]
    annotations: [{key: extender.dev/maintenance}]
    window: {annotation: extender.dev/maintenance-window, leadTime: 1h}
- type: node-selector-policy
  params:
    mappings:
    - name: gpu
      namespaces: [ml-training, ml-serving]
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [gpu]}]}]
      exclusive: true
    unmatchedPods: allow
priorities:
- type: node-metadata
  params: {source: creationTimestamp, strategy: newest}
"""
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` from /proc/<pid>/stat (fields 14 and 15), in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


@dataclass(frozen=True)
class Call:
    """One request the benchmark repeats, and how to tell its answer is well-formed."""

    name: str
    method: str
    path: str
    body: bytes | None
    check: Callable[[bytes], bool]
    calls: int | None = None  # None: the run's --calls


def _filter_ok(count: int, full: bool = False) -> Callable[[bytes], bool]:
    """Every node answered once: passed (``NodeNames``, or ``Nodes.items`` for full nodes) or failed."""
    def check(data: bytes) -> bool:
        answer = json.loads(data)
        if full and answer.get("NodeNames"):
            return False
        passed = ((answer.get("Nodes") or {}).get("items") or []) if full else (answer.get("NodeNames") or [])
        failed = {**(answer.get("FailedNodes") or {}), **(answer.get("FailedAndUnresolvableNodes") or {})}
        return not answer.get("Error") and len(passed) + len(failed) == count
    return check


def _prioritize_ok(count: int) -> Callable[[bytes], bool]:
    def check(data: bytes) -> bool:
        answer = json.loads(data)
        return isinstance(answer, list) and len(answer) == count and all(0 <= e["Score"] <= 10 for e in answer)
    return check


def _healthz_ok(data: bytes) -> bool:
    return isinstance(json.loads(data), dict)


def calls(sizes: list[int], full: tuple[tuple[int, int], ...] = ()) -> list[Call]:
    """The floor (/healthz, an empty filter), then each verb at each size, then each verb with
    full Node objects for each (nodes, calls) of ``full`` (:func:`benchmarks.payloads.full_nodes`)."""
    empty = json.loads(payloads.recorded_names_mode("filter", 0))
    result = [Call("GET /healthz", "GET", "/healthz", None, _healthz_ok),
              Call("filter, 0 names", "POST", "/scheduler/filter", json.dumps(empty).encode(), _filter_ok(0))]
    for verb in VERBS:
        check = _filter_ok if verb == "filter" else _prioritize_ok
        result += [Call(f"{verb}, {n} names", "POST", f"/scheduler/{verb}", payloads.recorded_names_mode(verb, n), check(n))
                   for n in sizes]
    for n, count in full:
        body = payloads.full_nodes(n).body
        result += [Call(f"filter, {n} full nodes", "POST", "/scheduler/filter", body, _filter_ok(n, full=True), count),
                   Call(f"prioritize, {n} full nodes", "POST", "/scheduler/prioritize", body, _prioritize_ok(n), count)]
    return result


@dataclass
class Measured:
    """``calls`` repetitions of one call: server CPU, latencies, answers."""

    name: str
    calls: int
    cpu_ms_per_call: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    malformed: int


def measure(service: RunningService, call: Call, count: int, warmup: int,
            around: Callable[[], None] | None = None) -> Measured:
    """Warm up, then ``count`` calls on one keep-alive connection, CPU read around them.
    ``around`` (if given) runs just before the first and just after the last measured call."""
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    headers = {"Content-Type": "application/json"} if call.body is not None else {}
    statuses: dict[int, int] = {}
    malformed = 0
    samples: list[float] = []

    def one() -> tuple[int, bytes]:
        conn.request(call.method, call.path, body=call.body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    for _ in range(warmup):
        one()
    pids = [service.process.pid, *service.worker_pids()]
    if around:
        around()
    before = cpu_seconds(pids)
    for _ in range(count):
        started = time.perf_counter()
        status, data = one()
        samples.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        malformed += status != 200 or not call.check(data)
    after = cpu_seconds(pids)
    if around:
        around()
    conn.close()
    ordered = sorted(samples)
    return Measured(call.name, count, (after - before) * 1000 / count, statistics.median(samples) * 1000,
                    ordered[min(len(ordered) - 1, round(0.99 * len(ordered) + 0.5) - 1)] * 1000, statuses, malformed)


@contextmanager
def cluster(nodes: int) -> Iterator[Path]:
    """The fake API server holding ``nodes`` replicated nodes; yields a kubeconfig for it."""
    from tests.kube.fake_apiserver import FakeApiServer
    from tests.kube.live import write_kubeconfig

    with FakeApiServer(nodes=payloads.cluster_nodes(nodes)) as apiserver, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", apiserver.url)
        (Path(tmp) / "policy.yaml").write_text(POLICY)
        yield kubeconfig


@contextmanager
def server(kubeconfig: Path, log_level: str, profile_dir: Path | None = None,
           tree: Path = ROOT) -> Iterator[RunningService]:
    """``extender serve --node-cache`` of ``tree`` (this checkout by default) on the cluster at
    ``log_level`` (under :mod:`benchmarks.profiled_serve` with ``profile_dir``: this checkout
    only), ready with its one worker. Another tree is served by this interpreter from that
    tree as cwd with ``PYTHONPATH`` at it (:func:`benchmarks.service.running`)."""
    if profile_dir and tree != ROOT:
        raise ValueError("the profiled server is this checkout's")
    port = free_port()
    entry = ["-m", "benchmarks.profiled_serve"] if profile_dir else ["-m", "extender"]
    command = [sys.executable, *entry, "serve", "--port", str(port), "--policy", str(kubeconfig.with_name("policy.yaml")),
               "--node-cache", "--kubeconfig", str(kubeconfig), "--log-level", log_level]  # over running()'s warning
    env = {"BENCH_PROFILE_DIR": str(profile_dir)} if profile_dir else {}
    if tree != ROOT:
        env.update(tree_env(tree))
    with running(command, port, env=env, workers=1, ready_timeout=300, cwd=tree) as service:
        yield service


def process_tree(service: RunningService) -> list[dict[str, Any]]:
    """Per server process (master, worker): its pid, cwd and ``PYTHONPATH`` from /proc, which
    (with ``python -m``) decide whose ``extender`` it imported."""
    result = []
    for pid in [service.process.pid, *service.worker_pids()]:
        environ = dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
        result.append({"pid": pid, "cwd": os.readlink(f"/proc/{pid}/cwd"), "PYTHONPATH": environ.get("PYTHONPATH")})
    return result


#: breakdown groups: name -> does a (file, line, function) profile key belong to it
BUCKETS: dict[str, Callable[[str, str], bool]] = {
    "app": lambda f, n: f.endswith("flask/app.py") and n.endswith("wsgi_app"),
    "body read": lambda f, n: f.endswith("extender/web/body.py") and n.endswith("read_body"),
    "verb": lambda f, n: f.endswith("extender/service.py"),
    "decode": lambda f, n: f.endswith("extender/codec/kube_scheduler.py"),
    "encode": lambda f, n: f.endswith("extender/codec/kube_scheduler_replies.py"),
    "node-cache lookup": lambda f, n: "/extender/kube/" in f,
    "engine": lambda f, n: any(f"/extender/{p}/" in f for p in ("engine", "rules", "sdk", "view", "measured")),
    "decision record": lambda f, n: "/extender/decisions/" in f,
    "logging": lambda f, n: f.endswith("logging/__init__.py"),
    "gunicorn HTTP": lambda f, n: "/gunicorn/http/" in f,
    "fast path": lambda f, n: f.endswith("extender/serving/fastpath.py"),
    "endpoint": lambda f, n: f.endswith(("extender/web/verbs.py", "extender/web/probes.py")),
}


def entered(stats: dict[Any, Any], bucket: Callable[[str, str], bool],
            callers_in: Callable[[str, str], bool] | None = None) -> float:
    """CPU seconds spent in calls into ``bucket`` from outside it (from ``callers_in`` only, if given)."""
    total = 0.0
    for (file, _, name), (_, _, _, cumulative, callers) in stats.items():
        if not bucket(file, name):
            continue
        if not callers:
            total += cumulative
        for (cfile, _, cname), edge in callers.items():
            if not bucket(cfile, cname) and (callers_in is None or callers_in(cfile, cname)):
                total += edge[3]
    return total


def breakdown(path: Path, calls_count: int) -> dict[str, float]:
    """The profile at ``path`` as CPU ms per call in the issue's groups (disjoint, summing to
    the total: the profiled threads' CPU, from the ``.threads.json`` beside it)."""
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(json.loads(path.with_suffix(".threads.json").read_text()).values())
    def service(file: str, name: str) -> bool:
        return file.endswith("extender/service.py")

    def verb_code(file: str, name: str) -> bool:  # the decision record logs its line from decisions/
        return service(file, name) or BUCKETS["decision record"](file, name)

    outer = ("app", "body read", "verb", "logging", "fast path", "endpoint")
    got = {name: entered(stats, BUCKETS[name], None if name in outer else service) for name in BUCKETS}
    # the verb's calls only: views built while decoding or looking up count there, not as engine
    logging_in_verb = entered(stats, BUCKETS["logging"], verb_code)
    # the record's own code: its log call is counted under logging
    got["decision record"] -= entered(stats, BUCKETS["logging"], BUCKETS["decision record"])
    # the parser, the WSGI environ and the response writing, as the worker calls them (body
    # reads from the app through werkzeug count as the body read)
    http = entered(stats, BUCKETS["gunicorn HTTP"], lambda f, n: "/gunicorn/" in f or "/extender/serving/" in f)
    # the verbs' and probes' answers (web/verbs.py, web/probes.py): from the Flask routes, or
    # from the worker's fast path without Flask
    endpoint_in_app = entered(stats, BUCKETS["endpoint"], lambda f, n: "/extender/serving/" not in f)
    inner = sum(got[k] for k in ("decode", "encode", "node-cache lookup", "engine", "decision record")) + logging_in_verb
    rows = {
        "gunicorn HTTP (parser, environ, response write)": http,
        "fast path (head, response head)": got["fast path"],
        "gunicorn worker (event loop, dispatch, rest)": total - got["app"] - http - got["fast path"]
        - (got["endpoint"] - endpoint_in_app) - (got["logging"] - logging_in_verb),
        "WSGI/Flask (app minus body read and answer)": got["app"] - got["body read"] - endpoint_in_app,
        "body read": got["body read"],
        "answer (verbs.py, probes.py) minus the verb": got["endpoint"] - got["verb"],
        "decode": got["decode"],
        "node-cache lookup": got["node-cache lookup"],
        "engine (rules)": got["engine"],
        "encode": got["encode"],
        "decision record (built, encoded)": got["decision record"],
        "logging": got["logging"],
        "verb's own code (service)": got["verb"] - inner,
        "total (profiled threads)": total,
    }
    return {name: seconds * 1000 / calls_count for name, seconds in rows.items()}


def profiled(kubeconfig: Path, log_level: str, verbs_at: int, count: int, warmup: int) -> dict[str, Any]:
    """The floor and each verb at ``verbs_at`` names on a profiled server: breakdown and profiled CPU/call."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, server(kubeconfig, log_level, Path(tmp)) as service:
        for call in calls([verbs_at]):
            worker = service.worker_pids()[0]
            before = set(Path(tmp).glob("*.pstat"))

            def toggle() -> None:
                os.kill(worker, signal.SIGRTMIN)

            measured = measure(service, call, count, warmup, around=toggle)
            deadline = time.monotonic() + 60
            while not (new := set(Path(tmp).glob("*.pstat")) - before):
                if time.monotonic() > deadline:
                    raise RuntimeError("the profiled worker saved no profile")
                time.sleep(0.1)
            result[call.name] = {"measured": measured.__dict__, "breakdown": breakdown(new.pop(), count)}
    return result


FULL = ((100, 200), (1000, 40))  #: full-node cases: (nodes in the request, calls)
TARGET_NAMES = 500  #: issue 11's target: p99 now at 500 names <= p50 before


def run(calls_count: int = 3000, sizes: tuple[int, ...] = (50, 232, 500, 5000), nodes: int = 5000,
        warmup: int = 100, profile_names: int = 232, log_level: str = "info", before: str | None = None,
        rounds: int = 1, full: tuple[tuple[int, int], ...] = FULL) -> dict[str, Any]:
    """The whole benchmark; its report as plain data. With ``before`` (a git revision), that
    revision in a temporary worktree and this checkout are served in ``rounds`` interleaved
    rounds (before, now, before, now, ...), a fresh server of each tree per round on the same
    fake API server, every call measured each round; rows are medians over the rounds."""
    cases = calls(list(sizes), full)
    trees_used: AbstractContextManager[Path | None] = worktree(before) if before else nullcontext(None)
    with cluster(max(nodes, *sizes)) as kubeconfig, trees_used as before_tree:
        trees = {"before": before_tree, "now": ROOT} if before_tree else {"now": ROOT}
        served: dict[str, dict[str, Any]] = {
            label: {"tree": str(tree), "extender": str(imported_extender(tree)), "processes": []}
            for label, tree in trees.items()}
        per_round: dict[str, list[list[Measured]]] = {label: [] for label in trees}
        for round_ in range(rounds):
            for label, tree in trees.items():
                with server(kubeconfig, log_level, tree=tree) as service:
                    served[label]["processes"].append(process_tree(service))
                    per_round[label].append([measure(service, call, call.calls or calls_count,
                                                     warmup if call.calls is None else min(warmup, 5))
                                             for call in cases])
                if rounds > 1 or before_tree:
                    print(f"round {round_ + 1}/{rounds}: {label} done", file=sys.stderr)
        profile = profiled(kubeconfig, log_level, profile_names, calls_count, warmup) if profile_names else {}
    summary = {label: summarize(measured) for label, measured in per_round.items()}
    report: dict[str, Any] = {
        "calls": calls_count, "nodes": max(nodes, *sizes), "log_level": log_level, "rounds": rounds,
        "before_rev": before, "served": served, "measured": summary["now"], "before": summary.get("before"),
        "rounds_measured": {label: [[m.__dict__ for m in r] for r in rs] for label, rs in per_round.items()},
        "profile": profile,
    }
    if before_tree:
        old = {m["name"]: m for m in summary["before"]}
        report["cpu_ratio"] = {m["name"]: (m["cpu_ms_per_call"] / old[m["name"]]["cpu_ms_per_call"]
                                           if old[m["name"]]["cpu_ms_per_call"] else None) for m in summary["now"]}
        new = {m["name"]: m for m in summary["now"]}
        report["target"] = {verb: {"now_p99_ms": new[name]["p99_ms"], "before_p50_ms": old[name]["p50_ms"],
                                   "ratio": new[name]["p99_ms"] / old[name]["p50_ms"]}
                            for verb in VERBS if (name := f"{verb}, {TARGET_NAMES} names") in new}
    return report


def summarize(rounds: list[list[Measured]]) -> list[dict[str, Any]]:
    """Per call: the median over ``rounds`` of CPU ms/call, p50 and p99; statuses and malformed answers summed."""
    result = []
    for same in zip(*rounds):
        statuses: dict[int, int] = {}
        for m in same:
            for status, count in m.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        result.append({"name": same[0].name, "calls": same[0].calls,
                       "cpu_ms_per_call": statistics.median(m.cpu_ms_per_call for m in same),
                       "p50_ms": statistics.median(m.p50_ms for m in same),
                       "p99_ms": statistics.median(m.p99_ms for m in same),
                       "statuses": statuses, "malformed": sum(m.malformed for m in same)})
    return result


def _answers(*measured: dict[str, Any]) -> str:
    bad = sum(m["malformed"] for m in measured)
    return "all 200, well-formed" if not bad else f"{bad} bad: {[m['statuses'] for m in measured]}"


def table(report: dict[str, Any]) -> str:
    """The report as the other benchmarks print it."""
    rounds = f", median of {report['rounds']} rounds" if report.get("rounds", 1) > 1 else ""
    lines = [f"names mode, {report['nodes']} cached nodes, log level {report['log_level']}, "
             f"calls per row on one keep-alive connection{rounds}"]
    if report.get("before") is None:
        lines += ["", "call                         calls  CPU ms/call  p50 ms  p99 ms  answers"]
        for m in report["measured"]:
            lines.append(f"{m['name']:<27}  {m['calls']:>5}  {m['cpu_ms_per_call']:>11.3f}  {m['p50_ms']:>6.2f}  "
                         f"{m['p99_ms']:>6.2f}  {_answers(m)}")
    else:
        lines[0] += f"; before = {report['before_rev']}, interleaved with now"
        lines += ["", f"{'':<27}  {'':>5}  {'CPU ms/call':^28}  {'p50 ms':^13}  {'p99 ms':^13}",
                  f"{'call':<27}  {'calls':>5}  {'before':>8}  {'now':>8}  {'now/bef':>8}  {'before':>6} {'now':>6}  "
                  f"{'before':>6} {'now':>6}  answers"]
        for old, new in zip(report["before"], report["measured"]):
            ratio = report["cpu_ratio"][new["name"]]
            lines.append(f"{new['name']:<27}  {new['calls']:>5}  {old['cpu_ms_per_call']:>8.3f}  {new['cpu_ms_per_call']:>8.3f}  "
                         f"{'-' if ratio is None else f'{ratio:.2f}':>8}  {old['p50_ms']:>6.2f} {new['p50_ms']:>6.2f}  "
                         f"{old['p99_ms']:>6.2f} {new['p99_ms']:>6.2f}  {_answers(old, new)}")
        if report["target"]:
            lines += ["", f"p99 at {TARGET_NAMES} names (now) / p50 at {TARGET_NAMES} names (before), target <= 1:"]
            for verb, t in report["target"].items():
                lines.append(f"  {verb:<10}  {t['now_p99_ms']:.2f} / {t['before_p50_ms']:.2f} ms = {t['ratio']:.2f}")
    if "served" in report:
        lines += [""] + [f"{label}: extender from {Path(s['extender']).parent}, server cwd "
                         f"{sorted({p['cwd'] for r in s['processes'] for p in r})}" for label, s in report["served"].items()]
    if report["profile"]:
        names = list(report["profile"])
        lines += ["", f"{'profile (yappi, CPU clock), ms/call':<48}" + "".join(f"  {n:>20}" for n in names)]
        for row in next(iter(report["profile"].values()))["breakdown"]:
            cells = "".join(f"  {_share(report['profile'][n]['breakdown'], row):>20}" for n in names)
            lines.append(f"{row:<48}{cells}")
        lines.append(f"{'profiled server, /proc CPU ms/call':<48}"
                     + "".join(f"  {report['profile'][n]['measured']['cpu_ms_per_call']:>20.3f}" for n in names))
    return "\n".join(lines)


def _share(breakdown: dict[str, float], row: str) -> str:
    return f"{breakdown[row]:.3f} ({breakdown[row] / breakdown['total (profiled threads)']:4.0%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_per_call", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--sizes", default="50,232,500,5000", help="NodeNames counts, comma-separated")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--profile-names", type=int,
                        help="size the breakdown is profiled at, on this checkout only (0: none; default 232, "
                             "or 0 with --before, which already serves 2 x --rounds servers)")
    parser.add_argument("--before", metavar="REV",
                        help="also serve git revision REV (a temporary detached worktree, this harness and "
                             "interpreter) interleaved with this checkout, side by side with now/before ratios")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, a fresh server per tree each (default 3 with --before, else 1)")
    parser.add_argument("--full-sizes", default=",".join(str(n) for n, _ in FULL),
                        help="full-node (Nodes in the body) request sizes, comma-separated ('' for none)")
    parser.add_argument("--full-calls", default=",".join(str(c) for _, c in FULL),
                        help="calls per row for each of --full-sizes")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="the server's (default info, as shipped: a decision log line per verb call)")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args(argv)
    full_sizes = [int(n) for n in args.full_sizes.split(",") if n]
    full_calls = [int(c) for c in args.full_calls.split(",") if c]
    if len(full_sizes) != len(full_calls):
        parser.error("--full-calls needs one count per --full-sizes entry")
    profile_names = args.profile_names if args.profile_names is not None else (0 if args.before else 232)
    rounds = args.rounds if args.rounds is not None else (3 if args.before else 1)
    report = run(args.calls, tuple(int(s) for s in args.sizes.split(",")), warmup=args.warmup,
                 profile_names=profile_names, log_level=args.log_level, before=args.before, rounds=rounds,
                 full=tuple(zip(full_sizes, full_calls)))
    print(table(report))
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
