"""Predicate node-selector-policy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.engine import Engine
from extender.policy import PolicyError, load_policy_text
from extender.rules.node_selector_policy import NodeSelectorPolicyPredicate
from extender.sdk import Context, NodeView, PodView, Rejection

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
CTX = Context(now=NOW)
CERT = "example.com/cert-expiry"


def make(mappings: list[dict[str, Any]], unmatched: str = "allow") -> NodeSelectorPolicyPredicate:
    params = NodeSelectorPolicyPredicate.params_schema().load({"mappings": mappings, "unmatchedPods": unmatched})
    return NodeSelectorPolicyPredicate(params)


def pool(*values: str) -> list[dict[str, Any]]:
    """One term: ``node-pool In values``."""
    return [{"matchExpressions": [{"key": "node-pool", "operator": "In", "values": list(values)}]}]


def node(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> NodeView:
    return NodeView("n1", labels=labels or {}, annotations=annotations or {})


def pod(namespace: str = "default", **labels: str) -> PodView:
    return PodView("p", namespace, labels=labels)


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def not_in(name: str) -> Rejection:
    return Rejection(f"node(s) not in node pool {name!r}", resolvable=False)


def reserved(name: str) -> Rejection:
    return Rejection(f"node(s) reserved for node pool {name!r}", resolvable=False)


UNMATCHED = Rejection("node(s) not allowed: no node pool is mapped to this pod", resolvable=False)

TENANTS = make(
    [
        {"name": "team-a", "namespaces": ["team-a", "team-a-ci"], "nodeSelectorTerms": pool("team-a")},
        {"name": "gpu", "podSelector": {"matchLabels": {"workload": "gpu"}}, "nodeSelectorTerms": pool("gpu"),
         "exclusive": True},
        {"name": "batch", "namespaces": ["batch"], "podSelector": {"matchLabels": {"tier": "batch"}},
         "nodeSelectorTerms": pool("batch", "spot")},
    ]
)


# -- pools --------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["team-a", "team-a-ci"])
def test_mapped_pod_runs_in_its_pool_only(namespace: str) -> None:
    assert TENANTS.filter(pod(namespace), node({"node-pool": "team-a"}), CTX) is None
    assert TENANTS.filter(pod(namespace), node({"node-pool": "batch"}), CTX) == not_in("team-a")
    assert TENANTS.filter(pod(namespace), node(), CTX) == not_in("team-a")


def test_namespaces_and_pod_selector_must_both_match() -> None:
    batch_node = node({"node-pool": "spot"})
    assert TENANTS.filter(pod("batch", tier="batch"), batch_node, CTX) is None
    assert TENANTS.filter(pod("batch", tier="batch"), node({"node-pool": "team-a"}), CTX) == not_in("batch")
    # Either half alone: the mapping does not apply, so the pod is unmatched (and allowed).
    assert TENANTS.filter(pod("batch", tier="web"), node({"node-pool": "team-a"}), CTX) is None
    assert TENANTS.filter(pod("default", tier="batch"), node({"node-pool": "team-a"}), CTX) is None


def test_terms_are_ored_and_expressions_anded() -> None:
    rule = make(
        [
            {
                "name": "edge",
                "namespaces": ["edge"],
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]},
                                          {"key": "edge", "operator": "Exists"}]},
                    {"matchExpressions": [{"key": "role", "operator": "In", "values": ["edge-gw"]}]},
                ],
            }
        ]
    )
    edge = pod("edge")
    assert rule.filter(edge, node({"zone": "z1", "edge": ""}), CTX) is None
    assert rule.filter(edge, node({"role": "edge-gw"}), CTX) is None
    assert rule.filter(edge, node({"zone": "z1"}), CTX) == not_in("edge")
    assert rule.filter(edge, node({"edge": "", "zone": "z2"}), CTX) == not_in("edge")


def test_first_matching_mapping_applies() -> None:
    rule = make(
        [
            {"name": "ci", "podSelector": {"matchLabels": {"ci": "true"}}, "nodeSelectorTerms": pool("ci")},
            {"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a")},
        ]
    )
    assert rule.filter(pod("team-a", ci="true"), node({"node-pool": "ci"}), CTX) is None
    assert rule.filter(pod("team-a", ci="true"), node({"node-pool": "team-a"}), CTX) == not_in("ci")
    assert rule.filter(pod("team-a"), node({"node-pool": "team-a"}), CTX) is None


def test_empty_pod_selector_is_a_catch_all() -> None:
    rule = make(
        [
            {"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a")},
            {"name": "shared", "podSelector": {}, "nodeSelectorTerms": pool("shared")},
        ]
    )
    assert rule.filter(pod("anything"), node({"node-pool": "shared"}), CTX) is None
    assert rule.filter(pod("anything"), node({"node-pool": "team-a"}), CTX) == not_in("shared")


# -- exclusive pools ----------------------------------------------------------------------


def test_exclusive_pool_takes_only_its_own_pods() -> None:
    gpu_node = node({"node-pool": "gpu"})
    assert TENANTS.filter(pod("team-a", workload="gpu"), node({"node-pool": "team-a"}), CTX) is None
    assert TENANTS.filter(pod("ml", workload="gpu"), gpu_node, CTX) is None
    assert TENANTS.filter(pod("default"), gpu_node, CTX) == reserved("gpu")  # unmatched pod
    assert TENANTS.filter(pod("batch", tier="batch"), gpu_node, CTX) == not_in("batch")
    assert TENANTS.filter(pod("default"), node({"node-pool": "general"}), CTX) is None


def test_exclusive_pool_overlapping_the_pods_own_pool_rejects() -> None:
    # The node is in team-a's pool, but the exclusive "fast" pool claims it too.
    rule = make(
        [
            {"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a")},
            {"name": "fast", "namespaces": ["latency"], "exclusive": True,
             "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]}]},
        ]
    )
    assert rule.filter(pod("team-a"), node({"node-pool": "team-a", "disk": "nvme"}), CTX) == reserved("fast")
    assert rule.filter(pod("team-a"), node({"node-pool": "team-a", "disk": "ssd"}), CTX) is None


def test_exclusive_pool_belongs_to_the_first_match_only() -> None:
    # A team-a pod labelled workload=gpu gets mapping team-a (first), so gpu nodes are not its own.
    rule = make(
        [
            {"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a", "gpu")},
            {"name": "gpu", "podSelector": {"matchLabels": {"workload": "gpu"}}, "nodeSelectorTerms": pool("gpu"),
             "exclusive": True},
        ]
    )
    assert rule.filter(pod("team-a", workload="gpu"), node({"node-pool": "gpu"}), CTX) == reserved("gpu")


def test_unmatched_pods_deny() -> None:
    rule = make([{"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a")}], "deny")
    assert rule.filter(pod("default"), node({"node-pool": "team-a"}), CTX) == UNMATCHED
    assert rule.filter(pod("default"), node(), CTX) == UNMATCHED
    assert rule.filter(pod("team-a"), node({"node-pool": "team-a"}), CTX) is None


def test_applies_to_is_false_only_when_the_rule_cannot_reject() -> None:
    plain = [{"name": "team-a", "namespaces": ["team-a"], "nodeSelectorTerms": pool("team-a")}]
    assert make(plain).applies_to(pod("default"), CTX) is False
    assert make(plain).applies_to(pod("team-a"), CTX) is True
    assert make(plain, "deny").applies_to(pod("default"), CTX) is True
    assert TENANTS.applies_to(pod("default"), CTX) is True  # the gpu pool is exclusive


# -- numeric and time comparisons ---------------------------------------------------------

CERTS = make(
    [
        {
            "name": "secure",
            "namespaces": ["payments"],
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": CERT, "source": "annotation", "operator": "Gt", "values": ["now+72h"]},
                                      {"key": "gpu-count", "operator": "Lt", "values": ["4"]}]}
            ],
        }
    ]
)


@pytest.mark.parametrize(
    ("expiry", "gpus", "fits"),
    [
        (stamp(NOW + timedelta(days=30)), "2", True),
        (stamp(NOW + timedelta(hours=72, seconds=1)), "3.5", True),
        (stamp(NOW + timedelta(hours=72)), "2", False),  # Gt is strict
        (stamp(NOW + timedelta(hours=24)), "2", False),
        (stamp(NOW + timedelta(days=30)), "4", False),  # Lt is strict
        (stamp(NOW + timedelta(days=30)), "10", False),  # decimal, not string, order
        ("next month", "2", False),  # unparseable values never match
        (stamp(NOW + timedelta(days=30)), "two", False),
        (None, "2", False),
    ],
)
def test_gt_lt_on_timestamps_and_numbers(expiry: str | None, gpus: str, fits: bool) -> None:
    annotations = {CERT: expiry} if expiry is not None else {}
    verdict = CERTS.filter(pod("payments"), node({"gpu-count": gpus}, annotations), CTX)
    assert verdict == (None if fits else not_in("secure"))


def test_time_bounds_follow_ctx_now() -> None:
    expiry = node({"gpu-count": "1"}, {CERT: stamp(NOW + timedelta(days=4))})
    assert CERTS.filter(pod("payments"), expiry, CTX) is None
    assert CERTS.filter(pod("payments"), expiry, Context(now=NOW + timedelta(days=2))) == not_in("secure")


def test_label_and_annotation_sources_are_distinct() -> None:
    rule = make(
        [{"name": "x", "namespaces": ["x"],
          "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Exists", "source": "annotation"}]}]}]
    )
    assert rule.filter(pod("x"), node(annotations={"k": ""}), CTX) is None
    assert rule.filter(pod("x"), node(labels={"k": ""}), CTX) == not_in("x")


def test_rejections_reach_the_engine_as_unresolvable() -> None:
    policy = load_policy_text(
        """
predicates:
- type: node-selector-policy
  params:
    mappings:
    - name: team-a
      namespaces: [team-a]
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [team-a]}]}]
    - name: gpu
      podSelector: {matchLabels: {workload: gpu}}
      exclusive: true
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [gpu]}]}]
"""
    )
    nodes = [
        NodeView("a1", labels={"node-pool": "team-a"}),
        NodeView("g1", labels={"node-pool": "gpu"}),
        NodeView("o1"),
    ]
    decision = Engine(policy).filter(pod("team-a"), nodes, CTX)
    assert decision.passed == [0]
    assert decision.failed == {}
    assert decision.unresolvable == {
        "g1": "node(s) not in node pool 'team-a'",
        "o1": "node(s) not in node pool 'team-a'",
    }
    decision = Engine(policy).filter(pod("default"), nodes, CTX)
    assert decision.passed == [0, 2]
    assert decision.unresolvable == {"g1": "node(s) reserved for node pool 'gpu'"}


# -- properties ---------------------------------------------------------------------------

NAMESPACES = ["ns1", "ns2", "ns3"]
KEYS = ["pool", "zone"]
VALUES = ["a", "b", "c"]


@st.composite
def expressions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    expr: dict[str, Any] = {"key": draw(st.sampled_from(KEYS)), "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True))
    return expr


@st.composite
def mappings(draw: st.DrawFn, index: int) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "name": f"m{index}",
        "nodeSelectorTerms": draw(
            st.lists(st.fixed_dictionaries({"matchExpressions": st.lists(expressions(), min_size=1, max_size=2)}),
                     min_size=1, max_size=2)
        ),
        "exclusive": draw(st.booleans()),
    }
    namespaces = draw(st.none() | st.lists(st.sampled_from(NAMESPACES), min_size=1, max_size=2, unique=True))
    tier = draw(st.none() | st.sampled_from(VALUES))
    if namespaces is not None:
        mapping["namespaces"] = namespaces
    if tier is not None or namespaces is None:
        mapping["podSelector"] = {"matchLabels": {"tier": tier}} if tier is not None else {}
    return mapping


@st.composite
def policies(draw: st.DrawFn) -> tuple[list[dict[str, Any]], str]:
    count = draw(st.integers(1, 4))
    return [draw(mappings(i)) for i in range(count)], draw(st.sampled_from(["allow", "deny"]))


PODS = st.builds(
    lambda ns, tier: pod(ns, **({"tier": tier} if tier else {})),
    st.sampled_from(NAMESPACES),
    st.none() | st.sampled_from(VALUES),
)
NODES = st.builds(
    lambda labels: node(labels), st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)
)


def _expr_holds(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    """Reference semantics of the set operators, written out independently of the rule."""
    present = expr["key"] in labels
    if expr["operator"] == "Exists":
        return present
    if expr["operator"] == "DoesNotExist":
        return not present
    inside = present and labels[expr["key"]] in expr["values"]
    return inside if expr["operator"] == "In" else not inside


def _in_pool(mapping: dict[str, Any], labels: dict[str, str]) -> bool:
    return any(all(_expr_holds(e, labels) for e in t["matchExpressions"]) for t in mapping["nodeSelectorTerms"])


def _applies(mapping: dict[str, Any], p: PodView) -> bool:
    if "namespaces" in mapping and p.namespace not in mapping["namespaces"]:
        return False
    wanted = mapping.get("podSelector", {}).get("matchLabels", {})
    return all(p.labels.get(k) == v for k, v in wanted.items())


@given(policy=policies(), p=PODS, n=NODES)
def test_node_in_own_pool_and_no_other_exclusive_pool_is_never_rejected(
    policy: tuple[list[dict[str, Any]], str], p: PodView, n: NodeView
) -> None:
    raw, unmatched = policy
    rule = make(raw, unmatched)
    labels = dict(n.labels)
    own = next((m for m in raw if _applies(m, p)), None)
    if own is not None and _in_pool(own, labels):
        if not any(m["exclusive"] and m is not own and _in_pool(m, labels) for m in raw):
            assert rule.filter(p, n, CTX) is None


@given(policy=policies(), p=PODS, n=NODES)
def test_verdict_matches_reference_model(policy: tuple[list[dict[str, Any]], str], p: PodView, n: NodeView) -> None:
    raw, unmatched = policy
    rule = make(raw, unmatched)
    labels = dict(n.labels)
    own = next((m for m in raw if _applies(m, p)), None)
    expected: Rejection | None = None
    if own is None and unmatched == "deny":
        expected = UNMATCHED
    elif own is not None and not _in_pool(own, labels):
        expected = not_in(own["name"])
    else:
        claimed = [m for m in raw if m["exclusive"] and m is not own and _in_pool(m, labels)]
        expected = reserved(claimed[0]["name"]) if claimed else None
    assert rule.filter(p, n, CTX) == expected
    if not rule.applies_to(p, CTX):
        assert expected is None


# -- params -------------------------------------------------------------------------------


def test_invalid_params_report_field_paths() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            """
predicates:
- type: node-selector-policy
  params:
    unmatchedPods: maybe
    mappings:
    - name: team-a
      namespaces: [team-a]
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [team-a]}]}]
    - name: team-a
      nodeSelectorTerms:
      - matchExpressions: [{key: example.com/cert-expiry, source: annotation, operator: Gt, values: [now+1h, now+2h]}]
      - matchExpressions: []
      - matchExpressions: [{key: gpus, operator: Lt, values: [many]}, {key: x, operator: Exists, values: [y]}]
    - name: ""
      namespaces: []
      podSelector: {matchExpressions: [{key: tier, operator: Gt, values: ["1"]}]}
      nodeSelectorTerms: []
    - namespaces: [x]
      exclusive: sometimes
      nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Like, source: spec}]}]
"""
        )
    assert err.value.problems == [
        "predicates[0].params.mappings[1]: "
        "give namespaces, podSelector or both to say which pods the mapping applies to",
        "predicates[0].params.mappings[1].name: duplicate mapping name 'team-a' (also mappings[0])",
        "predicates[0].params.mappings[1].nodeSelectorTerms[0].matchExpressions[0].values: Gt takes exactly one value",
        "predicates[0].params.mappings[1].nodeSelectorTerms[1].matchExpressions: list at least one expression",
        "predicates[0].params.mappings[1].nodeSelectorTerms[2].matchExpressions[0].values: "
        "Lt needs a number or a time (now, now+24h, now-7d, RFC 3339), got 'many'",
        "predicates[0].params.mappings[1].nodeSelectorTerms[2].matchExpressions[1].values: Exists takes no values",
        "predicates[0].params.mappings[2].name: must not be empty",
        "predicates[0].params.mappings[2].namespaces: list at least one namespace, or omit namespaces",
        "predicates[0].params.mappings[2].nodeSelectorTerms: list at least one term",
        "predicates[0].params.mappings[2].podSelector.matchExpressions[0].operator: "
        "must be one of In, NotIn, Exists, DoesNotExist",
        "predicates[0].params.mappings[3].exclusive: must be true or false",
        "predicates[0].params.mappings[3].name: required",
        "predicates[0].params.mappings[3].nodeSelectorTerms[0].matchExpressions[0].operator: "
        "must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt",
        "predicates[0].params.mappings[3].nodeSelectorTerms[0].matchExpressions[0].source: "
        "must be one of label, annotation",
        "predicates[0].params.unmatchedPods: must be one of allow, deny",
    ]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("{}", "predicates[0].params.mappings: required"),
        ("{mappings: []}", "predicates[0].params.mappings: list at least one mapping"),
        ("{mappings: [{name: a, namespaces: [a]}]}", "predicates[0].params.mappings[0].nodeSelectorTerms: required"),
        (
            "{mappings: [{name: a, namespaces: [a], nodeSelectorTerms: [{}]}]}",
            "predicates[0].params.mappings[0].nodeSelectorTerms[0].matchExpressions: required",
        ),
    ],
)
def test_missing_params_are_reported(params: str, problem: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(f"predicates: [{{type: node-selector-policy, params: {params}}}]")
    assert err.value.problems == [problem]


def test_valid_policy_loads() -> None:
    policy = load_policy_text(
        """
predicates:
- type: node-selector-policy
  params:
    unmatchedPods: deny
    mappings:
    - name: team-a
      namespaces: [team-a, team-a-ci]
      podSelector: {matchLabels: {tier: batch}}
      nodeSelectorTerms:
      - matchExpressions:
        - {key: node-pool, operator: In, values: [team-a]}
        - {key: example.com/cert-expiry, source: annotation, operator: Gt, values: ["now+72h"]}
      exclusive: true
"""
    )
    rule = policy.predicates[0].rule
    assert isinstance(rule, NodeSelectorPolicyPredicate)
    good = node({"node-pool": "team-a"}, {CERT: stamp(NOW + timedelta(days=7))})
    assert rule.filter(pod("team-a-ci", tier="batch"), good, CTX) is None
    assert rule.filter(pod("team-a-ci"), good, CTX) == UNMATCHED
