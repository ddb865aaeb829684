"""Preempt without a node cache (full-node mode): the recorded preempt requests carry no Node
objects, so candidates are checked against the nodes earlier recorded filter/prioritize
requests carried. A candidate the policy rejects is never offered; one the extender has not
seen is dropped (default) or kept (``--preempt-unknown-nodes keep``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from extender.kube.candidates import startup_warning
from extender.policy import load_policy_text
from extender.settings import Settings
from tests.conftest import SCHEDULER_VERSIONS, fixture, make_app
from tests.records import decision_records, rejected_count
from tests.test_server import free_port, wait_ready

# The recorded pool labels: batch = node-00000, -00001, -00002, -00004; gpu = -00003, -00005,
# -00006, -00007. The recorded preemptor urgent-1 (app=urgent) may only go to batch nodes.
POLICY = """
predicates:
- type: node-condition
  params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}
- type: node-selector-policy
  params:
    mappings:
    - name: urgent-on-batch
      namespaces: [default]
      podSelector: {matchLabels: {app: urgent}}
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [batch]}]}]
"""
BATCH = ["node-00000", "node-00001", "node-00002", "node-00004"]
EVERY_NODE = [f"node-0000{i}" for i in range(8)]
# The recorded db-1 filter request carries six nodes: not node-00002 (batch) nor node-00005 (gpu).
DB_1_NODES = ["node-00000", "node-00001", "node-00003", "node-00004", "node-00006", "node-00007"]

versions = pytest.mark.parametrize("version", SCHEDULER_VERSIONS)


def client_for(**settings: Any) -> FlaskClient:
    return make_app(POLICY, Settings(**settings)).test_client()


def teach(client: FlaskClient, version: str, *stems: str) -> None:
    """Send recorded full-node requests (the extender remembers the nodes they carry)."""
    for stem in stems:
        verb = stem.split("-")[1]
        assert client.post(f"/scheduler/{verb}", data=fixture(version, "full-nodes", stem)).status_code == 200


def preempt(client: FlaskClient, version: str, body: bytes | None = None) -> dict[str, Any]:
    body = body or fixture(version, "full-nodes", "00007-preempt-urgent-1")
    response = client.post("/scheduler/preempt", data=body)
    assert response.status_code == 200
    reply: dict[str, Any] = json.loads(response.data)["NodeNameToMetaVictims"]
    return reply


def recorded_victims(version: str) -> dict[str, list[str]]:
    request = json.loads(fixture(version, "full-nodes", "00007-preempt-urgent-1"))
    return {n: [p["metadata"]["uid"] for p in v["Pods"]] for n, v in request["NodeNameToVictims"].items()}


@versions
def test_rejected_candidates_are_dropped_accepted_kept_and_unseen_ones_dropped(
    version: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for()
    teach(client, version, "00005-filter-db-1")
    with caplog.at_level(logging.INFO, logger="extender.decisions"):
        reply = preempt(client, version)
    # seen and accepted: kept with the recorded victims; seen and in the gpu pool: dropped;
    # node-00002 and node-00005 were never seen: dropped, whether the policy would accept them or not
    assert sorted(reply) == sorted(set(DB_1_NODES) & set(BATCH)) == ["node-00000", "node-00001", "node-00004"]
    victims = recorded_victims(version)
    assert {n: [p["UID"] for p in v["Pods"]] for n, v in reply.items()} == {n: victims[n] for n in reply}
    (record,) = decision_records((r.getMessage() for r in caplog.records), "preempt")
    assert record["pod"]["name"] == "urgent-1"
    assert (record["nodes"], record["kept"], record["droppedCount"], rejected_count(record)) == (8, 3, 5, 3)
    assert (record["unknown"], record["unknownKept"], record["fetched"]) == (2, False, 0)
    assert {group["rule"] for group in record["rejected"]} == {"node-selector-policy"}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(
        "preempt pod=default/urgent-1 dropped 2 candidate(s) the extender knows nothing about "
        "(--preempt-unknown-nodes drop): node-00002, node-00005; they were not seen in a filter/prioritize request"
    )
    assert warning.getMessage().endswith("with --node-cache (names mode) or --preempt-node-lookup every candidate can be checked")


@versions
def test_unseen_candidates_can_be_kept_but_rejected_ones_never_are(version: str) -> None:
    client = client_for(preempt_unknown_nodes="keep")
    teach(client, version, "00005-filter-db-1")
    assert sorted(preempt(client, version)) == ["node-00000", "node-00001", "node-00002", "node-00004", "node-00005"]


@versions
def test_with_every_candidate_seen_exactly_the_accepted_pool_is_kept(version: str) -> None:
    for settings in ({}, {"preempt_unknown_nodes": "keep"}):
        client = client_for(**settings)
        teach(client, version, "00001-filter-web-1")
        assert sorted(preempt(client, version)) == BATCH, settings


@versions
def test_prioritize_requests_teach_nodes_too(version: str) -> None:
    client = client_for()
    teach(client, version, "00004-prioritize-batch-1", "00006-prioritize-db-1")
    assert sorted(preempt(client, version)) == BATCH, "node-00005 was in neither request: unknown"


@versions
def test_a_fresh_extender_keeps_no_candidate_by_default_and_all_with_keep(version: str) -> None:
    # The reported run: every node full before any request reached this replica, so no
    # filter call ever carried them.
    assert preempt(client_for(), version) == {}
    assert sorted(preempt(client_for(preempt_unknown_nodes="keep"), version)) == EVERY_NODE


def filter_request(version: str, node: str, rv: str, pool: str) -> bytes:
    """The recorded web-1 filter request with one node, relabelled, at resourceVersion ``rv``."""
    request = json.loads(fixture(version, "full-nodes", "00001-filter-web-1"))
    (item,) = [n for n in request["Nodes"]["items"] if n["metadata"]["name"] == node]
    item["metadata"]["resourceVersion"] = rv
    item["metadata"]["labels"]["node-pool"] = pool
    request["Nodes"]["items"] = [item]
    return json.dumps(request).encode()


def preempt_on(version: str, node: str) -> bytes:
    request = json.loads(fixture(version, "full-nodes", "00007-preempt-urgent-1"))
    request["NodeNameToVictims"] = {node: request["NodeNameToVictims"][node]}
    return json.dumps(request).encode()


@versions
def test_the_newest_resource_version_seen_decides(version: str) -> None:
    client = client_for()
    node = "node-00003"
    body = preempt_on(version, node)
    client.post("/scheduler/filter", data=filter_request(version, node, "10", "gpu"))
    assert preempt(client, version, body) == {}, "seen at RV 10 in the gpu pool: rejected"
    client.post("/scheduler/filter", data=filter_request(version, node, "12", "batch"))
    assert list(preempt(client, version, body)) == [node], "RV 12 moved it to batch: accepted"
    client.post("/scheduler/filter", data=filter_request(version, node, "11", "gpu"))
    assert list(preempt(client, version, body)) == [node], "an older RV arriving later does not overwrite"
    client.post("/scheduler/prioritize", data=filter_request(version, node, "13", "gpu"))
    assert preempt(client, version, body) == {}, "RV 13 (from a prioritize request) moved it back"


@versions
def test_the_bound_forgets_the_least_recently_seen_nodes(version: str) -> None:
    # With room for 4 nodes, after web-1 (all 8) and then batch-1 (the 4 batch nodes) only
    # the batch nodes are remembered: the gpu nodes are unknown again, and kept as such.
    client = client_for(preempt_seen_nodes=4, preempt_unknown_nodes="keep")
    teach(client, version, "00001-filter-web-1", "00003-filter-batch-1")
    assert sorted(preempt(client, version)) == EVERY_NODE
    roomy = client_for(preempt_unknown_nodes="keep")
    teach(roomy, version, "00001-filter-web-1", "00003-filter-batch-1")
    assert sorted(preempt(roomy, version)) == BATCH


def test_zero_seen_nodes_remembers_none() -> None:
    client = client_for(preempt_seen_nodes=0)
    teach(client, "kube-scheduler-v1.30", "00001-filter-web-1")
    assert preempt(client, "kube-scheduler-v1.30") == {}


def test_an_out_of_scope_filter_teaches_nothing_and_an_out_of_scope_preempt_keeps_every_candidate() -> None:
    policy = POLICY + "scope: {namespaces: {exclude: [default]}}\n"
    client = make_app(policy, Settings()).test_client()
    version = "kube-scheduler-v1.30"
    teach(client, version, "00001-filter-web-1")  # default/web-1: out of scope, nodes not even decoded
    assert sorted(preempt(client, version)) == EVERY_NODE, "the policy does not apply: nothing to check"


# -- settings and the start-up warning ---------------------------------------------------------


def test_settings_read_and_check_the_preempt_options() -> None:
    settings = Settings.from_env({"EXTENDER_PREEMPT_UNKNOWN_NODES": "keep", "EXTENDER_PREEMPT_SEEN_NODES": "100"})
    assert (settings.preempt_unknown_nodes, settings.preempt_seen_nodes) == ("keep", 100)
    assert (Settings().preempt_unknown_nodes, Settings().preempt_seen_nodes) == ("drop", 5000)
    assert Settings(preempt_unknown_nodes="maybe", preempt_seen_nodes=-1).validate() == [
        "preempt unknown nodes 'maybe': must be keep or drop",
        "preempt seen nodes -1: must be 0 (remember none) or more",
    ]


def test_the_start_up_warning_says_what_happens_to_unknown_candidates() -> None:
    policy = load_policy_text(POLICY)
    warning = startup_warning(policy, node_cache=False, node_lookup=False, seen_nodes=5000, unknown="drop")
    assert warning is not None and warning.startswith("preempt can only guess: without --node-cache, ")
    assert "a candidate it has not seen is dropped: no preemption on it until the extender has seen the node" in warning
    assert "(--preempt-unknown-nodes drop)" in warning
    assert "Run with --node-cache (names mode) or --preempt-node-lookup (RBAC: get on nodes)" in warning
    kept = startup_warning(policy, node_cache=False, node_lookup=False, seen_nodes=5000, unknown="keep")
    assert kept is not None and "kept: kube-scheduler may then evict its pods although the policy rejects" in kept
    none_seen = startup_warning(policy, node_cache=False, node_lookup=False, seen_nodes=0, unknown="drop")
    assert none_seen is not None and "no candidate can be checked (--preempt-seen-nodes 0)" in none_seen
    assert startup_warning(policy, node_cache=True, node_lookup=False, seen_nodes=5000, unknown="drop") is None
    assert startup_warning(policy, node_cache=False, node_lookup=True, seen_nodes=5000, unknown="drop") is None
    shadow_only = load_policy_text("predicates:\n- {type: node-condition, mode: shadow, params: {conditions: [{type: Ready, status: 'True', match: NotEqual}]}}\n")
    assert startup_warning(shadow_only, node_cache=False, node_lookup=False, seen_nodes=5000, unknown="drop") is None, "nothing to check"


# -- end to end: a real `extender serve`, filter then preempt over HTTP ------------------------------


def test_a_real_server_checks_preempt_candidates_against_nodes_an_earlier_filter_carried(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    log = tmp_path / "server.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_"))}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "extender", "serve", "--port", str(port), "--policy", str(policy), "--workers", "1"],
            stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
        )
    url = f"http://127.0.0.1:{port}/scheduler"
    version = "kube-scheduler-v1.30"
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        session = requests.Session()
        preempt_body = fixture(version, "full-nodes", "00007-preempt-urgent-1")
        assert session.post(f"{url}/preempt", data=preempt_body, timeout=5).json() == {"NodeNameToMetaVictims": {}}
        filtered = session.post(f"{url}/filter", data=fixture(version, "full-nodes", "00005-filter-db-1"), timeout=5)
        assert filtered.status_code == 200 and len(filtered.json()["Nodes"]["items"]) == 6
        reply = session.post(f"{url}/preempt", data=preempt_body, timeout=5).json()
        assert sorted(reply["NodeNameToMetaVictims"]) == ["node-00000", "node-00001", "node-00004"]
    finally:
        process.terminate()
        assert process.wait(timeout=25) == 0
    text = log.read_text()
    assert text.count("preempt can only guess: without --node-cache") == 1, "warned once, by the master process"
    first, second = decision_records(text.splitlines(), "preempt")
    assert (first["kept"], first["droppedCount"], rejected_count(first), first["unknown"]) == (0, 8, 0, 8)
    assert (second["kept"], second["droppedCount"], rejected_count(second), second["unknown"]) == (3, 5, 3, 2)
