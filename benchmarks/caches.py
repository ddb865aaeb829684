"""The node and pod caches at scale: memory, list cost and verb latency at 5000 nodes / 150k pods.

``python -m benchmarks.caches [--nodes 5000 --pods 150000 --requests 300]``

The cluster is the recorded one replicated: nodes as :mod:`benchmarks.payloads` builds them,
pods cycling through the 3 recorded pod shapes (tests/fixtures/kube-apiserver-v1.24) with
their own names, UIDs and nodes, 30 per node, PodScheduled days ago except ``--recent``
(1% by default) bound within the last 10 minutes. The fake API server serves them paged
(``limit``/``continue``), gzipped above 128 KiB, as a kube-apiserver does.

Measured:
1. the wire: one paged list of each resource as the reflector does it (pages, bytes);
2. per cache, in a fresh child process: one list into the store, its time, the RSS it adds
   (steady, after a collection) and the peak; for pods both today's full record per pod
   (``PodStore``) and the in-flight record (``RecentPodStore``);
3. the real ``extender serve --node-cache --pod-cache`` with 1 and with 2 workers: RSS per
   worker, watches and lists at the API server, names-mode filter/prioritize at 500 names.

Last run (2-core VM shared with other test runs; list wall times are the Python fake API
server's, the CPU column is the extender's; README "Caches at scale" has the tables):

    cache (one list)   items  list s  CPU s  steady MiB  peak MiB
    nodes               5000     0.7    0.4        14.3      23.5
    pods-full         150000    29.6    4.0       119.1     119.1
    pods-recent         1500    27.6    2.3         0.7       5.0
    serve  workers  watches  list GETs  RSS/worker MiB  filter p50/p99 ms  prioritize p50/p99 ms
                 1        2        310            57.5  1.33/4.12          1.26/3.89
                 2        4        620       57.1/58.0  1.44/5.89          1.62/3.62
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from benchmarks import payloads
from benchmarks.driver import sequential
from benchmarks.service import ROOT, serve

POLICY = ROOT / "deploy" / "extender" / "policy.yaml"
SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_pods(count: int, nodes: int, recent: float) -> list[dict[str, Any]]:
    """``count`` bound, running pods spread over ``nodes`` nodes from the recorded shapes."""
    from tests.kube.fake_store import recorded_pods

    shapes = recorded_pods()
    now = datetime.now(timezone.utc)
    old, fresh = _rfc3339(now - timedelta(days=3)), _rfc3339(now - timedelta(minutes=5))
    every = int(1 / recent) if recent > 0 else count + 1
    pods = []
    for index in range(count):
        pod = copy.deepcopy(shapes[index % len(shapes)])
        meta = pod["metadata"]
        meta["name"] = f"{meta['name']}-{index:06d}"
        meta["uid"] = f"00000000-0000-4000-9000-{index:012d}"
        meta["namespace"] = f"ns-{index % 50:02d}"
        meta.pop("resourceVersion", None)
        pod["spec"]["nodeName"] = payloads.node_name(index % nodes)
        at = fresh if index % every == 0 else old
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": at},
                {"type": "Ready", "status": "True", "lastTransitionTime": at},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": at},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
            ],
            "hostIP": "10.0.0.1",
            "podIP": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
            "startTime": at,
            "qosClass": "Burstable",
        }
        pods.append(pod)
    return pods


def wire(url: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    """One paged list as the reflector makes it: pages, bytes on the wire and decoded."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer test-token"
    pages = wire_bytes = body_bytes = 0
    token = ""
    started = time.perf_counter()
    while True:
        query = {**params, "limit": "500", **({"continue": token} if token else {})}
        response = session.get(f"{url}{path}", params=query, stream=True)
        raw = response.raw.read(decode_content=False)
        wire_bytes += len(raw)
        body = response.content if not raw else _decoded(raw, response.headers.get("Content-Encoding", ""))
        body_bytes += len(body)
        pages += 1
        token = json.loads(body)["metadata"].get("continue", "")
        if not token:
            break
    return {"pages": pages, "wire_mib": wire_bytes / 2**20, "json_mib": body_bytes / 2**20,
            "seconds": time.perf_counter() - started}


def _decoded(raw: bytes, encoding: str) -> bytes:
    import gzip

    return gzip.decompress(raw) if encoding == "gzip" else raw


def _rss_kib() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def child(kind: str, url: str) -> dict[str, Any]:
    """In a fresh process: list one resource into one store; what it costs."""
    from extender.kube.binds import BindHistory
    from extender.kube.client import KubeClient
    from extender.kube.config import ClusterConfig, StaticToken
    from extender.kube.reflector import Reflector
    from extender.kube.stores import NodeStore, PodStore, RecentPodStore

    client = KubeClient(ClusterConfig(server=url, token_source=StaticToken("test-token"), source="bench"), timeout=120)
    store: Any
    if kind == "nodes":
        store, decode, path, params = NodeStore(), NodeStore.decode, "/api/v1/nodes", {}
    elif kind == "pods-full":
        store, decode, path, params = PodStore(), PodStore.decode, "/api/v1/pods", {"fieldSelector": SELECTOR}
    else:
        history = BindHistory()
        recent = RecentPodStore(history)
        store, decode, path, params = recent, recent.decode, "/api/v1/pods", {"fieldSelector": SELECTOR}
    reflector: Reflector[Any] = Reflector(kind, client, path, store=store, decode=decode, params=params)
    gc.collect()
    before, _ = _rss_kib()
    started, cpu = time.perf_counter(), time.process_time()
    reflector.list()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    gc.collect()
    steady, peak = _rss_kib()
    result = {"kind": kind, "items": len(store), "list_seconds": seconds, "cpu_seconds": cpu,
              "steady_mib": (steady - before) / 1024, "peak_mib": (peak - before) / 1024}
    if kind == "pods-recent":
        result["recent_binds"] = len(history)
    return result


def _children(url: str) -> list[dict[str, Any]]:
    results = []
    for kind in ("nodes", "pods-full", "pods-recent"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.caches", "--child", kind, "--url", url],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))
    return results


def _served(apiserver: Any, kubeconfig: Path, workers: int, nodes: int, requests_count: int) -> dict[str, Any]:
    apiserver.requests.clear()
    started = time.perf_counter()
    with serve(POLICY, "--node-cache", "--pod-cache", "--kubeconfig", str(kubeconfig), workers=workers,
               ready_timeout=600) as service:
        ready_seconds = time.perf_counter() - started
        time.sleep(1)
        lists = [r for r in apiserver.requests if not r.is_watch]
        result: dict[str, Any] = {
            "workers": workers,
            "ready_seconds": ready_seconds,
            "watch_requests": sum(1 for r in apiserver.requests if r.is_watch),
            "list_requests": len(lists),
            "rss_mib": sorted(round(v[0], 1) for v in service.memory_mib().values()),
            "peak_rss_mib": sorted(round(v[1], 1) for v in service.memory_mib().values()),
        }
        payload = payloads.names(500, nodes)
        for verb in ("filter", "prioritize"):
            lat = sequential(service.port, f"/scheduler/{verb}", payload.body, requests_count, warmup=20)
            result[f"{verb}_500_names_ms"] = {"p50": round(lat.p50_ms, 3), "p99": round(lat.p99_ms, 3)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.caches", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--recent", type=float, default=0.01, help="fraction of pods bound in the last 10 minutes")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.url)))
        return 0
    from tests.kube.fake_apiserver import FakeApiServer
    from tests.kube.live import write_kubeconfig

    built = time.perf_counter()
    nodes, pods = payloads.cluster_nodes(args.nodes), cluster_pods(args.pods, args.nodes, args.recent)
    report: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods, "recent_fraction": args.recent}
    with FakeApiServer(nodes=nodes, pods=pods) as apiserver, tempfile.TemporaryDirectory() as tmp:
        del nodes, pods
        print(f"cluster built and served in {time.perf_counter() - built:.0f}s", file=sys.stderr)
        report["wire"] = {"nodes": wire(apiserver.url, "/api/v1/nodes", {}),
                          "pods": wire(apiserver.url, "/api/v1/pods", {"fieldSelector": SELECTOR})}
        report["caches"] = _children(apiserver.url)
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", apiserver.url)
        report["served"] = [_served(apiserver, kubeconfig, w, args.nodes, args.requests) for w in args.workers]
    print(table(report))
    print(json.dumps(report, indent=1))
    return 0


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['nodes']} nodes, {report['pods']} pods ({report['recent_fraction']:.0%} bound in the last 10 min)",
             "", "list (paged 500)  pages  wire MiB  JSON MiB  seconds"]
    for name, w in report["wire"].items():
        lines.append(f"{name:<17} {w['pages']:>5}  {w['wire_mib']:>8.1f}  {w['json_mib']:>8.1f}  {w['seconds']:>7.1f}")
    lines += ["", "cache (one list)   items  list s  CPU s  steady MiB  peak MiB"]
    for c in report["caches"]:
        lines.append(f"{c['kind']:<17} {c['items']:>6}  {c['list_seconds']:>6.1f}  {c['cpu_seconds']:>5.1f}  {c['steady_mib']:>10.1f}  {c['peak_mib']:>8.1f}")
    lines += ["", "serve  workers  ready s  watches  list GETs  RSS/worker MiB  peak MiB  filter p50/p99 ms  prioritize p50/p99 ms"]
    for s in report["served"]:
        f, p = s["filter_500_names_ms"], s["prioritize_500_names_ms"]
        lines.append(f"       {s['workers']:>7}  {s['ready_seconds']:>7.1f}  {s['watch_requests']:>7}  {s['list_requests']:>9}  "
                     f"{'/'.join(map(str, s['rss_mib'])):>14}  {'/'.join(map(str, s['peak_rss_mib'])):>8}  "
                     f"{f['p50']:.2f}/{f['p99']:.2f}  {p['p50']:.2f}/{p['p99']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
