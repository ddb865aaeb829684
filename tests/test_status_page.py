"""The status page (extender/web/status.py) through the Flask test client, and the decision
stores behind it (extender/status/store.py). The page in a real browser against a real
server: tests/test_status_browser.py."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from extender.policy import load_policy
from extender.service import ExtenderService
from extender.settings import Settings
from extender.status.store import SLOT_BYTES, MemoryStore, RingFileStore, decision_store, slot_bytes
from extender.status.summary import record_summary
from extender.web import create_app
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "deploy" / "extender" / "policy.yaml"
FULL_NODES = FIXTURES / "kube-scheduler-v1.30" / "full-nodes"


def record(name: str = "gpu-1", namespace: str = "default", time: str = "2026-12-07T16:55:01.123456Z", **fields: Any) -> dict[str, Any]:
    base = {
        "verb": "filter", "time": time, "pod": {"namespace": namespace, "name": name, "uid": "749a"},
        "mode": "names", "policy": "abc", "nodes": 2, "outcome": "answered", "tookMs": 0.41, "passed": 1,
        "rejected": [{"rule": "node-condition", "reason": "node(s) had condition KernelDeadlock=True",
                      "resolvable": False, "count": 1, "nodes": ["node-00001"]}],
        "unknown": 0,
    }  # fmt: skip
    base.update(fields)
    return base


TABLE = {
    "rules": ["node-condition", "node-cost"],
    "rows": [
        {"node": "node-00001", "verdicts": {"node-condition": "node(s) had condition KernelDeadlock=True", "node-cost": "n/a"},
         "raw": {}, "normalised": {}, "score": None, "answer": "unresolvable"},
        {"node": "node-00002", "verdicts": {"node-condition": "pass", "node-cost": "pass"},
         "raw": {"node-cost": 3.0}, "normalised": {"node-cost": 7.5}, "score": 8, "answer": "passed"},
    ],
    "truncated": 0,
}  # fmt: skip


def app_with(store: Any) -> Flask:
    return create_app(Settings(), policy=load_policy(str(POLICY)), decisions=store)


def test_decisions_made_through_the_verbs_appear_with_their_breakdown() -> None:
    app = app_with(MemoryStore(50))
    client = app.test_client()
    for stem in ("00001-filter-web-1", "00002-prioritize-web-1"):
        verb = stem.split("-")[1]
        body = (FULL_NODES / f"{stem}.request.json").read_bytes()
        assert client.post(f"/scheduler/{verb}", data=body, content_type="application/json").status_code == 200
    page = client.get("/status")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    policy = app.extensions["extender.service"].policy
    assert policy.digest in html and all(r.name in html for r in policy.predicates)
    assert html.count('class="decision"') == 2 and "default/web-1" in html
    assert "4/8 nodes passed; 4 rejected by node-pools (reserved for node pool &#39;gpu&#39;)" in html
    assert "best node-00001 score 10 (newest-nodes 10)" in html
    entries = app.extensions["extender.decisions"].recent()
    assert [e["record"]["verb"] for e in entries] == ["prioritize", "filter"]  # newest first
    detail = client.get(f"/status/decisions/{entries[1]['id']}").get_data(as_text=True)
    assert 'id="rejected"' in detail and "reserved for node pool &#39;gpu&#39;" in detail
    detail = client.get(f"/status/decisions/{entries[0]['id']}").get_data(as_text=True)
    assert 'id="best"' in detail and "<td>newest-nodes</td><td>10.0</td>" in detail


def test_a_records_table_is_shown_node_by_rule() -> None:
    store = MemoryStore(10)
    store(record(table=TABLE))
    client = app_with(store).test_client()
    (entry,) = store.recent()
    html = client.get(f"/status/decisions/{entry['id']}").get_data(as_text=True)
    assert '<table id="table">' in html
    assert "<th>node-condition</th><th>node-cost</th><th>score</th><th>answer</th>" in html
    assert "node(s) had condition KernelDeadlock=True" in html and "unresolvable" in html
    assert "raw 3.0" in html and "normalised 7.5" in html and "<td>8</td><td>passed</td>" in html


def test_shadow_rules_show_what_each_verb_records() -> None:
    # A shadow predicate records how many nodes it would reject; a shadow priority how many
    # scores it would change and which node it would pick.
    store = MemoryStore(10)
    store(record(shadow=[{"rule": "maint-shadow", "wouldReject": 2}]))
    store(record(verb="prioritize", shadow=[{"rule": "cost-shadow", "wouldChange": 3, "wouldBest": "node-00007"}]))
    client = app_with(store).test_client()
    prioritized, filtered = store.recent()
    html = client.get(f"/status/decisions/{filtered['id']}").get_data(as_text=True)
    assert "<td>maint-shadow</td><td>2</td>" in html
    html = client.get(f"/status/decisions/{prioritized['id']}").get_data(as_text=True)
    assert "<td>cost-shadow</td><td>3 node(s)</td><td>node-00007</td>" in html


def test_everything_from_requests_is_escaped() -> None:
    store = MemoryStore(10)
    store(record(name="<script>alert(1)</script>", rejected=[{"rule": "<b>r</b>", "reason": "<i>x</i>", "count": 1}]))
    client = app_with(store).test_client()
    html = client.get("/status?pod=<img src=x>").get_data(as_text=True)
    assert "<script>" not in html and "<img" not in html and "&lt;img src=x&gt;" in html
    html = client.get("/status").get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<i>x</i>" not in html
    page = client.get("/status")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_decisions_are_searchable_by_pod() -> None:
    store = MemoryStore(10)
    store(record(name="web-1"))
    store(record(name="db-1", namespace="prod", time="2026-12-07T16:55:02.000000Z"))
    client = app_with(store).test_client()
    assert client.get("/status?pod=prod/DB").get_data(as_text=True).count('class="decision"') == 1
    assert client.get("/status?pod=default/").get_data(as_text=True).count('class="decision"') == 1
    html = client.get("/status?pod=nothing").get_data(as_text=True)
    assert 'class="decision"' not in html and "No decision recorded for a pod matching" in html


def test_bad_requests_are_json_errors() -> None:
    client = app_with(MemoryStore(10)).test_client()
    missing = client.get("/status/decisions/123-000000000001")
    assert missing.status_code == 404 and "no decision '123-000000000001'" in missing.get_json()["error"]
    long_query = client.get("/status?pod=" + "x" * 400)
    assert long_query.status_code == 400 and "pod: at most" in long_query.get_json()["error"]
    post = client.post("/status")
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"


def test_without_a_store_there_is_no_page() -> None:
    assert create_app(Settings(), policy=load_policy(str(POLICY))).test_client().get("/status").status_code == 404


# -- stores ---------------------------------------------------------------------------------


def test_the_memory_store_keeps_the_last_n() -> None:
    store = MemoryStore(3)
    for n in range(5):
        store(record(name=f"p{n}", time=f"2026-12-07T16:55:0{n}.000000Z"))
    assert [e["record"]["pod"]["name"] for e in store.recent()] == ["p4", "p3", "p2"]
    assert store.recent(limit=1)[0]["record"]["pod"]["name"] == "p4"
    assert store.get(store.recent()[1]["id"])["record"]["pod"]["name"] == "p3"  # type: ignore[index]


def test_ring_files_wrap_and_are_read_across_workers(tmp_path: Path) -> None:
    store = decision_store(str(tmp_path), 3)
    assert isinstance(store, RingFileStore)
    for n in range(4):
        store(record(name=f"p{n}", time=f"2026-12-07T16:55:0{n}.000000Z"))
    files = list((tmp_path / "decisions").glob("*.ring"))
    assert [f.name for f in files] == [f"{os.getpid()}.ring"] and files[0].stat().st_size == 3 * SLOT_BYTES
    # Another worker process writes its own file; each reads both.
    code = (
        "import sys; from extender.status.store import RingFileStore; "
        "RingFileStore(sys.argv[1], 3)({'verb': 'filter', 'time': '2026-12-07T16:55:09.000000Z', "
        "'pod': {'namespace': 'other', 'name': 'w2', 'uid': 'u'}})"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "decisions")], check=True, cwd=ROOT)
    assert [e["record"]["pod"]["name"] for e in store.recent()] == ["w2", "p3", "p2"]
    assert [e["record"]["pod"]["name"] for e in store.recent("default/")] == ["p3", "p2", "p1"]
    assert len(list((tmp_path / "decisions").glob("*.ring"))) == 2


def test_a_record_too_large_for_its_slot_loses_its_table_then_its_detail(tmp_path: Path) -> None:
    big_table = {**TABLE, "rows": TABLE["rows"] * 200}
    data = slot_bytes("1-1", record(table=big_table))
    assert len(data) <= SLOT_BYTES and b'"table"' not in data and b'"rejected"' in data
    huge = record(rejected=[{"rule": "r", "reason": "x" * 40_000, "count": 1}])
    data = slot_bytes("1-2", huge)
    assert len(data) <= SLOT_BYTES and b'"rejected"' not in data and b'"passed":1' in data
    store = RingFileStore(tmp_path, 2)
    store(huge)
    assert store.recent()[0]["record"]["passed"] == 1


def test_a_torn_slot_is_skipped(tmp_path: Path) -> None:
    store = RingFileStore(tmp_path, 2)
    store(record(name="whole"))
    path = tmp_path / f"{os.getpid()}.ring"
    with path.open("r+b") as f:  # a slot whose length says more than was written yet
        f.seek(SLOT_BYTES)
        f.write(struct.pack("<I", 500) + b'{"id": "x", "rec')
    assert [e["record"]["pod"]["name"] for e in store.recent()] == ["whole"]


@pytest.mark.parametrize("capacity", [1, 200])
def test_settings_limit_the_decisions_kept(capacity: int) -> None:
    assert Settings(admin_port=8889, status_decisions=capacity).validate() == []
    assert "status decisions 0" in Settings(status_decisions=0).validate()[0]
    assert "admin port 8888" in Settings(admin_port=8888).validate()[0]


# -- the records the service hands its observers ---------------------------------------------


def test_names_mode_records_count_unknown_nodes_and_observer_errors_are_contained() -> None:
    store = MemoryStore(10)

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    service = ExtenderService(load_policy(str(POLICY)), observers=[broken, store])  # no node cache
    body = (FIXTURES / "kube-scheduler-v1.30" / "node-cache" / "00001-filter-gpu-1.request.json").read_bytes()
    reply = json.loads(service.filter(body))  # the broken observer does not fail the call
    assert len(reply["FailedAndUnresolvableNodes"]) == 8
    (entry,) = store.recent()
    filtered = entry["record"]
    assert (filtered["verb"], filtered["mode"], filtered["nodes"], filtered["passed"], filtered["unknown"]) == (
        "filter", "names", 8, 0, 8,
    )
    (rejection,) = filtered["rejected"]
    assert rejection["count"] == 8 and len(rejection["nodes"]) == 8 and rejection["resolvable"] is False
    assert rejection["rule"] == "extender:unknown-node"  # no node cache: every name is unknown
    assert filtered["pod"]["name"] == "gpu-1" and filtered["policy"] == service.policy.digest
    assert filtered["time"].endswith("Z") and filtered["tookMs"] >= 0


def test_an_out_of_scope_pod_is_recorded_as_untouched() -> None:
    store = MemoryStore(10)
    service = ExtenderService(load_policy(str(POLICY)), observers=[store])
    args = json.loads((FULL_NODES / "00001-filter-web-1.request.json").read_bytes())
    args["Pod"]["metadata"]["namespace"] = "kube-system"  # excluded by the policy's scope
    service.filter(json.dumps(args).encode())
    (entry,) = store.recent()
    assert entry["record"]["outcome"] == "out-of-scope" and entry["record"]["nodes"] == 8
    assert record_summary(entry["record"]) == "8 nodes untouched (pod out of the policy's scope)"


def test_serve_flags_and_the_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from extender.cli import _parser
    from extender.telemetry import runtime

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after: prepare() sets it

    args = _parser().parse_args(["serve", "--admin-port", "8889", "--status-decisions", "50", "--events"])
    settings = Settings().with_overrides(vars(args))
    assert (settings.admin_port, settings.admin_host, settings.status_decisions, settings.events) == (8889, "127.0.0.1", 50, True)
    assert settings.needs_api(bind_enabled=False)  # Events go through the API server
    stale = tmp_path / "decisions" / "123.ring"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    made = runtime.prepare(str(tmp_path))
    assert made.path == tmp_path.resolve() and list((tmp_path / "decisions").iterdir()) == []
    temporary = runtime.prepare(None)
    try:
        assert Path(temporary.path, "decisions").is_dir()
    finally:
        temporary.remove()


def test_the_page_shows_the_last_reload_and_a_refused_policy_s_problems(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY.read_text())
    app = create_app(Settings(policy=str(policy_file), policy_poll_seconds=0), decisions=MemoryStore(10))
    client = app.test_client()
    assert 'id="reload"' not in client.get("/status").get_data(as_text=True)  # nothing tried yet
    policy_file.write_text("predicates:\n- type: no-such-rule\n")
    attempt = app.extensions["extender.reloader"].check("signal")
    assert attempt is not None and not attempt.ok
    html = client.get("/status").get_data(as_text=True)
    reload = html.split('<p id="reload">', 1)[1].split("</p>", 1)[0]
    assert "refused" in reload and "the policy above keeps running" in reload
    assert "no-such-rule" in reload and "0 applied, 1 refused" in reload
    digest = app.extensions["extender.service"].policy.digest
    assert digest in html  # the running policy is still the first one
