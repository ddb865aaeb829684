"""The caches benchmark's cluster: faithful pods, unique, bound, a given share recently."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from benchmarks.caches import cluster_pods, table
from extender.codec import kube_api
from tests.kube.fake_store import recorded_pods


def test_cluster_pods_are_the_recorded_shapes_under_unique_names_spread_over_nodes() -> None:
    pods = cluster_pods(300, 10, recent=0.1)
    assert len({p["metadata"]["uid"] for p in pods}) == len({(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods}) == 300
    assert len({p["spec"]["nodeName"] for p in pods}) == 10
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {p["spec"]["containers"][0]["image"] for p in recorded_pods()}
    now = datetime.now(timezone.utc).timestamp()
    placements = [kube_api.decode_pod_bind_time(json.dumps(p).encode()) for p in pods]
    recent = [pl for pl in placements if pl.bound_at is not None and now - pl.bound_at.timestamp() < 600]
    assert len(recent) == 30 and all(pl.node_name for pl in placements)


def test_report_table() -> None:
    served = {"workers": 1, "ready_seconds": 1.0, "watch_requests": 2, "list_requests": 4, "rss_mib": [50.0],
              "peak_rss_mib": [60.0], "filter_500_names_ms": {"p50": 1.0, "p99": 2.0},
              "prioritize_500_names_ms": {"p50": 1.0, "p99": 2.0}}
    report = {"nodes": 10, "pods": 300, "recent_fraction": 0.1,
              "wire": {"pods": {"pages": 1, "wire_mib": 0.1, "json_mib": 1.0, "seconds": 0.1}},
              "caches": [{"kind": "nodes", "items": 10, "list_seconds": 0.1, "cpu_seconds": 0.1, "steady_mib": 1.0, "peak_mib": 2.0}],
              "served": [served]}
    text = table(report)
    assert "10 nodes, 300 pods (10% bound" in text and "1.00/2.00" in text
