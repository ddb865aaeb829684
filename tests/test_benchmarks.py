"""The benchmark's inputs stay valid requests (the benchmark itself is not a test: run it
with ``python -m benchmarks``)."""

from __future__ import annotations

import json

from benchmarks import payloads
from benchmarks.__main__ import Row, scaling, table
from benchmarks.baseline import stdlib_round_trip_ms
from extender.codec import kube_scheduler as wire
from extender.codec.objects import decode_nodes


def test_full_node_payloads_replicate_the_recorded_nodes_under_unique_names() -> None:
    payload = payloads.full_nodes(20)
    args = wire.decode_extender_args(payload.body)
    views = decode_nodes(args.node_items or [])
    assert [v.name for v in views] == [f"node-{i:05d}" for i in range(20)]
    assert len({v.uid for v in views}) == 20
    assert views[9].labels == {**views[1].labels, "kubernetes.io/hostname": "node-00009"}  # 8 templates cycle
    assert b'": ' not in payload.body[:200], "compact, as Go encodes it"
    assert payload.filter_reply is not None and len(payload.filter_reply["Nodes"]["items"]) == 20
    assert stdlib_round_trip_ms(payload.body, payload.filter_reply, repeats=1) > 0


def test_names_payloads_pick_nodes_spread_over_the_cache() -> None:
    names = json.loads(payloads.names(5, 50).body)["NodeNames"]
    assert names == ["node-00000", "node-00010", "node-00020", "node-00030", "node-00040"]
    preempt = wire.decode_preemption_args(payloads.preempt_meta(3, 30))
    assert list(preempt.candidates) == ["node-00000", "node-00010", "node-00020"] and preempt.meta


def test_report_table_and_scaling() -> None:
    rows = [
        Row("full", 1000, "filter", 7.0, 10, 20.0, 25.0, 50.0, baseline_ms=100.0, target="t", ok=True),
        Row("full", 5000, "filter", 35.0, 5, 110.0, 120.0, 9.0, baseline_ms=600.0),
    ]
    assert scaling(rows) == {"filter 5000/1000": 1.1}
    text = table(rows)
    assert "| full | 1000  | filter | 1       | 7.00    |" in text and "| 0.200      | t      | yes |" in text
