"""Replay every request recorded from real kube-schedulers (v1.24, v1.30) through the app.

Shapes are checked exactly as kube-scheduler decodes them (protocol.md §1, §2.5, §7), and
decisions are checked against policies whose outcome on the recorded cluster is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, fixture, fixture_id, load_json, make_app, request_line, scheduler_fixtures, verb_of

FILTER_KEYS = ["Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"]


def post(app_policy: Any, path: Path | str, body: bytes, *, after: bytes | None = None) -> Any:
    """``body``'s reply from a fresh app, which got the full-node filter request ``after`` first."""
    client = make_app(app_policy).test_client()
    if after is not None:
        assert client.post("/scheduler/filter", data=after).status_code == 200
    response = client.post(str(path), data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return response


def node_items(body: bytes) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = load_json(body)["Nodes"]["items"]
    return items


# -- every fixture, embedded default policy (all recorded nodes are healthy) --------------------


@pytest.mark.parametrize("path", scheduler_fixtures(), ids=fixture_id)
def test_every_recording_is_answered_in_the_shape_kube_scheduler_decodes(path: Path) -> None:
    method, target = request_line(path)
    assert method == "POST"
    body = path.read_bytes()
    request = load_json(body)
    verb = verb_of(path)
    # kube-scheduler filtered a pod on these nodes before it preempted (the recorded order):
    # preempt checks its candidates against those Node objects (tests/test_preempt.py).
    seen = fixture(path.parts[-3], "full-nodes", "00001-filter-web-1") if verb == "preempt" else None
    response = post(None, target, body, after=seen)
    reply = json.loads(response.data)
    if verb == "filter":
        assert list(reply) == FILTER_KEYS
        assert reply["Error"] == ""
        if request["Nodes"] is not None:
            # full-node mode: passing nodes come back as Node objects, unchanged
            assert reply["Nodes"] == {"metadata": {}, "items": request["Nodes"]["items"]}
            assert reply["NodeNames"] is None
            assert reply["FailedNodes"] == {} and reply["FailedAndUnresolvableNodes"] == {}
        else:
            # names mode without a node cache: unknown names are listed as failed, none dropped silently
            assert reply["Nodes"] is None and reply["NodeNames"] == []
            assert sorted(reply["FailedAndUnresolvableNodes"]) == sorted(request["NodeNames"])
    elif verb == "prioritize":
        assert isinstance(reply, list)
        names = (
            [n["metadata"]["name"] for n in request["Nodes"]["items"]]
            if request["Nodes"] is not None
            else request["NodeNames"]
        )
        assert [h["Host"] for h in reply] == names
        assert all(set(h) == {"Host", "Score"} and type(h["Score"]) is int for h in reply)
        assert all(0 <= h["Score"] <= 10 for h in reply)
    elif verb == "preempt":
        assert list(reply) == ["NodeNameToMetaVictims"]
        expected = {
            node: {"Pods": [{"UID": p["metadata"]["uid"]} for p in victims["Pods"]], "NumPDBViolations": 0}
            for node, victims in request["NodeNameToVictims"].items()
        }
        assert reply["NodeNameToMetaVictims"] == expected
    else:
        assert verb == "bind"
        assert list(reply) == ["Error"]
        assert "bind is not configured" in reply["Error"]


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_full_node_filter_echoes_each_passing_node_byte_for_byte(version: str) -> None:
    body = fixture(version, "full-nodes", "00001-filter-web-1")
    response = post(None, "/scheduler/filter", body)
    # Each item in the reply is a verbatim slice of the request body: nothing re-encoded.
    for item in node_items(body):
        start = body.index(f'"name": "{item["metadata"]["name"]}"'.encode())
        assert body[start : start + 200] in response.data


# -- decisions: a policy whose verdict on the recorded cluster is known --------------------------

# The recorded cluster: zone-a = node-00000, -00003, -00006; zone-b = -00001, -00004, -00007;
# zone-c = -00002, -00005. Instance types: m5.xlarge (1, 7), r5.2xlarge (0, 2, 3, 4), c5.4xlarge (5, 6).
DECISION_POLICY = """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
    - {type: KernelDeadlock, status: "True"}
- type: node-selector-policy
  params:
    mappings:
    - name: databases
      namespaces: [default]
      podSelector: {matchLabels: {app: db}}
      nodeSelectorTerms:
      - matchExpressions:
        - {key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}
priorities:
- type: node-cost
  params:
    prices:
      m5.xlarge: {on-demand: 0.192}
      r5.2xlarge: {on-demand: 0.504}
      c5.4xlarge: {on-demand: 0.680}
"""
ZONE_A = {"node-00000", "node-00003", "node-00006"}


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_namespace_mapped_to_a_pool_keeps_only_that_pool(version: str) -> None:
    body = fixture(version, "full-nodes", "00005-filter-db-1")
    sent = {n["metadata"]["name"] for n in node_items(body)}
    reply = json.loads(post(DECISION_POLICY, "/scheduler/filter", body).data)
    passed = {n["metadata"]["name"] for n in reply["Nodes"]["items"]}
    assert passed == sent & ZONE_A
    assert reply["FailedNodes"] == {}
    assert reply["FailedAndUnresolvableNodes"] == {
        name: "node(s) not in node pool 'databases'" for name in sent - ZONE_A
    }


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_pods_outside_a_mapping_are_untouched_by_it(version: str) -> None:
    body = fixture(version, "full-nodes", "00001-filter-web-1")  # app=web: no mapping applies
    reply = json.loads(post(DECISION_POLICY, "/scheduler/filter", body).data)
    assert len(reply["Nodes"]["items"]) == 8


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_a_node_with_a_bad_condition_is_rejected_and_the_rest_echoed(version: str) -> None:
    request = load_json(fixture(version, "full-nodes", "00001-filter-web-1"))
    sick = request["Nodes"]["items"][2]
    sick["status"]["conditions"].append({"type": "KernelDeadlock", "status": "True"})
    reply = json.loads(post(DECISION_POLICY, "/scheduler/filter", json.dumps(request).encode()).data)
    assert reply["FailedAndUnresolvableNodes"] == {
        sick["metadata"]["name"]: "node(s) had condition KernelDeadlock=True"
    }
    assert reply["Nodes"]["items"] == [n for n in request["Nodes"]["items"] if n is not sick]


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_prioritize_prefers_the_cheapest_instance_type(version: str) -> None:
    body = fixture(version, "full-nodes", "00002-prioritize-web-1")
    types = {n["metadata"]["name"]: n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in node_items(body)}
    reply = json.loads(post(DECISION_POLICY, "/scheduler/prioritize", body).data)
    scores = {h["Host"]: h["Score"] for h in reply}
    # min-max over 0.192..0.680: m5 10, r5 round(10*(0.680-0.504)/0.488)=4, c5 0
    expected = {"m5.xlarge": 10, "r5.2xlarge": 4, "c5.4xlarge": 0}
    assert scores == {name: expected[t] for name, t in types.items()}


@pytest.mark.parametrize("version", ["kube-scheduler-v1.24", "kube-scheduler-v1.30"])
def test_preempt_checks_candidates_against_nodes_seen_and_answers_meta_victims(version: str) -> None:
    # Full-node mode sends no Node objects with preempt: the candidates are checked against
    # those of an earlier filter request (all 8 recorded nodes are healthy, so all are kept).
    body = fixture(version, "full-nodes", "00007-preempt-urgent-1")
    reply = json.loads(post(DECISION_POLICY, "/scheduler/preempt", body, after=fixture(version, "full-nodes", "00001-filter-web-1")).data)
    assert sorted(reply["NodeNameToMetaVictims"]) == [f"node-0000{i}" for i in range(8)]
    for victims in reply["NodeNameToMetaVictims"].values():
        assert len(victims["Pods"]) == 1 and set(victims["Pods"][0]) == {"UID"}


def test_names_mode_can_pass_unknown_names_when_configured() -> None:
    from extender.settings import Settings

    body = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
    client = make_app(None, Settings(unknown_nodes="pass")).test_client()
    reply = json.loads(client.post("/scheduler/filter", data=body).data)
    assert reply["NodeNames"] == load_json(body)["NodeNames"]
    assert reply["Nodes"] is None and reply["FailedAndUnresolvableNodes"] == {}


def test_fixture_folder_is_the_real_recording() -> None:
    # Guard against the fixtures silently moving: the replay tests above must see them all.
    assert len(scheduler_fixtures()) == 20
    assert (FIXTURES / "README.md").is_file()
