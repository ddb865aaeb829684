"""Properties that must hold for every request (hypothesis):

- filter never returns a node it was not sent, and accounts for every node it was sent:
  each is passed, or listed in FailedNodes / FailedAndUnresolvableNodes, exactly once;
- prioritize scores every node it was sent, in order, with JSON integers in 0..10;
- answers are deterministic: the same request gives the same bytes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.policy import load_policy_text
from extender.service import ExtenderService, ServiceOptions
from extender.settings import Settings
from extender.view import NodeView
from extender.web import create_app
from extender.codec import objects

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)

POLICY = load_policy_text(
    """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
    - {type: KernelDeadlock, status: "True"}
- type: node-maintenance
  params:
    labels: [{key: maintenance}]
    window: {annotation: window, leadTime: 1h}
- type: node-selector-policy
  params:
    mappings:
    - name: pool-a
      namespaces: [team-a]
      nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [a]}]}]
      exclusive: true
- type: node-condition
  name: shadow-pressure
  mode: shadow
  params:
    conditions: [{type: MemoryPressure, status: "True"}]
priorities:
- type: node-metadata
  params: {key: rank, strategy: highest}
- type: node-metadata
  name: age
  weight: 2
  params: {source: creationTimestamp, strategy: oldest}
"""
)

statuses = st.sampled_from(["True", "False", "Unknown"])
windows = st.sampled_from(
    [None, "garbage", "2026-11-25T12:30:00Z/2026-11-25T14:00:00Z", "2026-11-26T00:00:00Z/2026-11-26T01:00:00Z"]
)


@st.composite
def node_json(draw: st.DrawFn, name: str) -> dict[str, Any]:
    conditions = [
        {"type": t, "status": draw(statuses)}
        for t in draw(st.lists(st.sampled_from(["Ready", "KernelDeadlock", "MemoryPressure"]), unique=True))
    ]
    labels = {"kubernetes.io/hostname": name}
    if draw(st.booleans()):
        labels["pool"] = draw(st.sampled_from(["a", "b"]))
    if draw(st.booleans()):
        labels["maintenance"] = "true"
    if draw(st.booleans()):
        labels["rank"] = draw(st.sampled_from(["1", "2", "10", "-3", "x"]))
    annotations = {}
    window = draw(windows)
    if window is not None:
        annotations["window"] = window
    created = draw(st.sampled_from(["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", "bogus", None]))
    metadata: dict[str, Any] = {"name": name, "labels": labels, "annotations": annotations}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {"metadata": metadata, "spec": {}, "status": {"conditions": conditions, "allocatable": {"cpu": "4"}}}


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    names = draw(st.lists(st.sampled_from([f"node-{i}" for i in range(12)]), min_size=0, max_size=10, unique=True))
    nodes = [draw(node_json(name)) for name in names]
    pod = {
        "metadata": {"name": "p", "namespace": draw(st.sampled_from(["team-a", "default", "kube-system"]))},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]},
    }
    return pod, nodes


def app_with(nodes: list[dict[str, Any]] | None = None, unknown: str = "fail") -> Any:
    cache = {n["metadata"]["name"]: objects.decode_node(json.dumps(n).encode()) for n in nodes or []}

    class Cache:
        ready = True

        def get(self, name: str) -> NodeView | None:
            return cache.get(name)

        def get_many(self, names: list[str]) -> list[NodeView | None]:
            return [cache.get(n) for n in names]

        def subscribe(self, listener: Any) -> None:
            pass  # the cache never changes

    service = ExtenderService(
        POLICY, nodes=Cache(), options=ServiceOptions(unknown_nodes=unknown), clock=lambda: NOW  # type: ignore[arg-type]
    )
    return create_app(Settings(), service=service).test_client()


def check_filter_accounting(sent: list[str], reply: dict[str, Any], passed: list[str]) -> None:
    failed, unresolvable = reply["FailedNodes"], reply["FailedAndUnresolvableNodes"]
    assert set(passed) <= set(sent), "filter returned a node it was not sent"
    assert passed == [n for n in sent if n in set(passed)], "passing nodes keep the request order"
    assert not (set(failed) & set(unresolvable))
    for name in sent:
        assert (name in passed) + (name in failed) + (name in unresolvable) == 1, name
    assert all(isinstance(r, str) and r for r in [*failed.values(), *unresolvable.values()])
    assert reply["Error"] == ""


@settings(max_examples=150, deadline=None)
@given(requests())
def test_full_node_filter_accounts_for_every_node(request: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    pod, nodes = request
    body = json.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}).encode()
    client = app_with()
    first = client.post("/scheduler/filter", data=body)
    assert first.status_code == 200
    reply = json.loads(first.data)
    assert reply["NodeNames"] is None
    items = reply["Nodes"]["items"]
    assert all(item in nodes for item in items), "a returned node differs from the one sent"
    check_filter_accounting([n["metadata"]["name"] for n in nodes], reply, [i["metadata"]["name"] for i in items])
    assert client.post("/scheduler/filter", data=body).data == first.data


@settings(max_examples=150, deadline=None)
@given(requests(), st.lists(st.sampled_from([f"node-{i}" for i in range(14)]), unique=True), st.sampled_from(["fail", "pass"]))
def test_names_mode_filter_accounts_for_every_name(
    request: tuple[dict[str, Any], list[dict[str, Any]]], names: list[str], unknown: str
) -> None:
    pod, nodes = request  # nodes are the cache; names may include ones the cache lacks
    body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
    client = app_with(nodes, unknown)
    first = client.post("/scheduler/filter", data=body)
    reply = json.loads(first.data)
    assert reply["Nodes"] is None
    check_filter_accounting(names, reply, reply["NodeNames"])
    assert client.post("/scheduler/filter", data=body).data == first.data


@settings(max_examples=150, deadline=None)
@given(requests())
def test_prioritize_scores_every_node_with_integers_0_to_10(request: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    pod, nodes = request
    body = json.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}).encode()
    client = app_with()
    first = client.post("/scheduler/prioritize", data=body)
    reply = json.loads(first.data)
    assert isinstance(reply, list)
    assert [h["Host"] for h in reply] == [n["metadata"]["name"] for n in nodes]
    for host in reply:
        assert set(host) == {"Host", "Score"}
        assert type(host["Score"]) is int and 0 <= host["Score"] <= 10
    assert b'"Score":' in first.data or not nodes
    assert b".0" not in first.data.split(b'"Score":', 1)[-1][:4]
    assert client.post("/scheduler/prioritize", data=body).data == first.data


@settings(max_examples=100, deadline=None)
@given(
    requests(),
    st.dictionaries(
        st.sampled_from([f"node-{i}" for i in range(12)]),
        st.lists(st.uuids().map(str), max_size=3),
        max_size=8,
    ),
)
def test_preempt_keeps_only_requested_nodes_with_victims(
    request: tuple[dict[str, Any], list[dict[str, Any]]], candidates: dict[str, list[str]]
) -> None:
    pod, nodes = request
    body = json.dumps(
        {
            "Pod": pod,
            "NodeNameToVictims": None,
            "NodeNameToMetaVictims": {
                n: {"Pods": [{"UID": u} for u in uids], "NumPDBViolations": 0} for n, uids in candidates.items()
            },
        }
    ).encode()
    reply = json.loads(app_with(nodes).post("/scheduler/preempt", data=body).data)
    kept = reply["NodeNameToMetaVictims"]
    assert set(kept) <= set(candidates)
    for name, victims in kept.items():
        assert victims["Pods"], "never a node with 0 victims"
        assert [p["UID"] for p in victims["Pods"]] == candidates[name]


@settings(max_examples=150, deadline=None)
@given(requests())
def test_names_mode_decides_as_full_node_mode_does(request: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """The memoized names-mode path and the full-node path agree, request after request."""
    pod, nodes = request
    names = [n["metadata"]["name"] for n in nodes]
    full = json.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}).encode()
    by_name = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
    full_client, names_client = app_with(), app_with(nodes)
    for _ in range(2):  # the second round is answered from the memo
        a = json.loads(full_client.post("/scheduler/filter", data=full).data)
        b = json.loads(names_client.post("/scheduler/filter", data=by_name).data)
        assert [n["metadata"]["name"] for n in a["Nodes"]["items"]] == b["NodeNames"]
        assert (a["FailedNodes"], a["FailedAndUnresolvableNodes"]) == (b["FailedNodes"], b["FailedAndUnresolvableNodes"])
        assert full_client.post("/scheduler/prioritize", data=full).data == names_client.post("/scheduler/prioritize", data=by_name).data
