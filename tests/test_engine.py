"""The engine: scope, ordered predicates, shadow mode, onError, preempt."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from extender.engine import ConfiguredRule, Engine, Policy, PodScope, Victims
from extender.k8s.selectors import LabelSelector
from extender.sdk import Context, NodeView, OwnerReference, PodView, Predicate, Priority, Rejection

CTX = Context(now=datetime(2026, 11, 25, tzinfo=timezone.utc))
NODES = [NodeView(f"n{i}", labels={"rank": str(i)}) for i in range(4)]
POD = PodView("p", "default")


class RejectNames(Predicate):
    def __init__(self, names: set[str], reason: str = "node(s) were unlucky", resolvable: bool = False) -> None:
        super().__init__()
        self.names, self.reason, self.resolvable = names, reason, resolvable

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        return Rejection(self.reason, self.resolvable) if node.name in self.names else None


class Explodes(Predicate):
    def __init__(self, on: set[str] | None = None) -> None:
        super().__init__()
        self.on = on

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        if self.on is None or node.name in self.on:
            raise KeyError("missing thing")
        return None


class ExplodesForPod(Predicate):
    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        raise RuntimeError("cannot read pod")

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        return None


class Rank(Priority):
    def __init__(self, broken: set[str] | None = None) -> None:
        super().__init__()
        self.broken = broken or set()

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        if node.name in self.broken:
            raise ValueError("bad rank")
        return float(node.labels["rank"])


def engine(*predicates: ConfiguredRule[Any], priorities: tuple[ConfiguredRule[Any], ...] = (), scope: PodScope | None = None) -> Engine:
    return Engine(Policy(scope=scope or PodScope(), predicates=predicates, priorities=priorities))


def test_first_rejecting_predicate_gives_the_reason_and_resolvability_picks_the_map() -> None:
    e = engine(
        ConfiguredRule("a", RejectNames({"n1"}, "node(s) failed a", resolvable=True)),
        ConfiguredRule("b", RejectNames({"n1", "n2"}, "node(s) failed b")),
    )
    d = e.filter(POD, NODES, CTX)
    assert list(d.passed) == [0, 3]
    assert d.failed == {"n1": "node(s) failed a"}
    assert d.unresolvable == {"n2": "node(s) failed b"}


def test_shadow_predicates_record_but_do_not_reject() -> None:
    e = engine(ConfiguredRule("trial", RejectNames({"n0", "n3"}), mode="shadow"))
    d = e.filter(POD, NODES, CTX)
    assert list(d.passed) == [0, 1, 2, 3]
    assert d.shadow_rejections == {"trial": {"n0": "node(s) were unlucky", "n3": "node(s) were unlucky"}}


def test_on_error_deny_rejects_and_allow_passes_and_both_are_recorded() -> None:
    deny = engine(ConfiguredRule("x", Explodes({"n2"}), on_error="deny")).filter(POD, NODES, CTX)
    assert deny.unresolvable == {"n2": "node(s) could not be checked by x"}
    assert [(f.rule, f.count, f.action) for f in deny.failures] == [("x", 1, "denied")]
    assert deny.failures[0].first_message == "KeyError: 'missing thing'"
    allow = engine(ConfiguredRule("x", Explodes(), on_error="allow")).filter(POD, NODES, CTX)
    assert list(allow.passed) == [0, 1, 2, 3]
    assert [(f.count, f.action) for f in allow.failures] == [(4, "allowed")]


def test_applies_to_raising_follows_on_error() -> None:
    deny = engine(ConfiguredRule("pod", ExplodesForPod(), on_error="deny")).filter(POD, NODES, CTX)
    assert list(deny.passed) == [] and len(deny.unresolvable) == 4
    allow = engine(ConfiguredRule("pod", ExplodesForPod(), on_error="allow")).filter(POD, NODES, CTX)
    assert list(allow.passed) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("scope", "pod", "in_scope"),
    [
        (PodScope(include_namespaces=frozenset({"a"})), PodView("p", "a"), True),
        (PodScope(include_namespaces=frozenset({"a"})), PodView("p", "b"), False),
        (PodScope(exclude_namespaces=frozenset({"kube-system"})), PodView("p", "kube-system"), False),
        (PodScope(pod_selector=LabelSelector({"app": "web"})), PodView("p", labels={"app": "web"}), True),
        (PodScope(pod_selector=LabelSelector({"app": "web"})), PodView("p", labels={"app": "db"}), False),
        (
            PodScope(exclude_owner_kinds=frozenset({"DaemonSet"})),
            PodView("p", owner_references=(OwnerReference(kind="DaemonSet", name="cni", controller=True),)),
            False,
        ),
        (
            PodScope(exclude_owner_kinds=frozenset({"DaemonSet"})),
            PodView("p", owner_references=(OwnerReference(kind="ReplicaSet", name="web", controller=True),)),
            True,
        ),
    ],
)
def test_pods_outside_the_scope_pass_untouched(scope: PodScope, pod: PodView, in_scope: bool) -> None:
    e = engine(ConfiguredRule("all", RejectNames({n.name for n in NODES})), priorities=(ConfiguredRule("r", Rank()),), scope=scope)
    assert e.in_scope(pod) is in_scope
    d = e.filter(pod, NODES, CTX)
    assert (list(d.passed) == [0, 1, 2, 3]) is not in_scope
    scores = e.prioritize(pod, NODES, CTX).scores
    assert list(scores) == ([0, 3, 7, 10] if in_scope else [0, 0, 0, 0])


def test_priorities_normalise_and_combine_by_weight() -> None:
    class Inverse(Priority):
        def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
            return -float(node.labels["rank"])

    e = engine(priorities=(ConfiguredRule("rank", Rank(), weight=3), ConfiguredRule("inverse", Inverse(), weight=1)))
    d = e.prioritize(POD, NODES, CTX, explain=True)
    # rank normalised 0, 3.33, 6.67, 10; inverse 10, 6.67, 3.33, 0; (3a + b) / 4
    assert list(d.scores) == [3, 4, 6, 8]
    assert [round(v, 2) for v in d.breakdown["rank"]] == [0.0, 3.33, 6.67, 10.0]


def test_shadow_priority_reports_what_it_would_have_done_without_changing_scores() -> None:
    e = engine(priorities=(ConfiguredRule("rank", Rank()), ConfiguredRule("trial", Rank(), mode="shadow", weight=1)))
    d = e.prioritize(POD, NODES, CTX, explain=True)
    assert list(d.scores) == [0, 3, 7, 10]
    assert list(d.shadow_scores["trial"]) == [0, 3, 7, 10]
    assert "trial" not in d.breakdown


def test_priority_errors_give_neutral_or_lowest_score() -> None:
    allow = engine(priorities=(ConfiguredRule("r", Rank({"n3"}), on_error="allow"),)).prioritize(POD, NODES, CTX)
    assert list(allow.scores) == [0, 5, 10, 5]  # n0..n2 normalised among themselves; n3 neutral
    deny = engine(priorities=(ConfiguredRule("r", Rank({"n3"}), on_error="deny"),)).prioritize(POD, NODES, CTX)
    assert list(deny.scores) == [0, 5, 10, 0]
    assert deny.failures[0].action == "lowest score"


def test_non_finite_scores_are_errors() -> None:
    class NaN(Priority):
        def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
            return float("nan") if node.name == "n0" else 1.0

    d = engine(priorities=(ConfiguredRule("nan", NaN(), on_error="deny"),)).prioritize(POD, NODES, CTX)
    assert list(d.scores) == [0, 10, 10, 10]
    assert "not a finite number" in d.failures[0].first_message


def resolver(nodes: list[NodeView], calls: list[list[str]] | None = None) -> Any:
    """A batch lookup over ``nodes`` that records what it was asked for."""
    known = {n.name: n for n in nodes}

    def resolve(names: list[str]) -> list[NodeView | None]:
        if calls is not None:
            calls.append(list(names))
        return [known.get(name) for name in names]

    return resolve


PREEMPT_CANDIDATES = {
    "n0": Victims(("u0",)),
    "n1": Victims(("u1",), 2),
    "n2": Victims(()),
    "n9": Victims(("u9a", "u9b"), 1),
}


def test_preempt_drops_rejected_nodes_nodes_without_victims_and_unknown_ones() -> None:
    e = engine(ConfiguredRule("no-n1", RejectNames({"n1"})))
    calls: list[list[str]] = []
    d = e.preempt(POD, PREEMPT_CANDIDATES, resolver(NODES[:3], calls), CTX, unknown="drop")
    assert calls == [["n0", "n1", "n9"]], "one batch, only candidates with victims"
    assert d.kept == {"n0": Victims(("u0",))}
    assert d.rejected == {"n1": "node(s) were unlucky"}
    assert list(d.without_victims) == ["n2"] and list(d.unknown) == ["n9"] and not d.unknown_kept
    assert d.dropped == {"n1": "node(s) were unlucky", "n2": "no victims", "n9": "node unknown to the extender"}


def test_preempt_can_keep_unknown_candidates_but_never_rejected_ones() -> None:
    e = engine(ConfiguredRule("no-n1", RejectNames({"n1"})))
    d = e.preempt(POD, PREEMPT_CANDIDATES, resolver(NODES[:3]), CTX, unknown="keep")
    assert d.kept == {"n0": Victims(("u0",)), "n9": Victims(("u9a", "u9b"), 1)}
    assert d.dropped == {"n1": "node(s) were unlucky", "n2": "no victims"}
    assert list(d.unknown) == ["n9"] and d.unknown_kept


def test_preempt_for_out_of_scope_pods_only_drops_empty_victim_lists() -> None:
    e = engine(ConfiguredRule("all", RejectNames({"n0"})), scope=PodScope(exclude_namespaces=frozenset({"default"})))
    calls: list[list[str]] = []
    d = e.preempt(POD, {"n0": Victims(("u",)), "n1": Victims(())}, resolver(NODES, calls), CTX, unknown="drop")
    assert d.kept == {"n0": Victims(("u",))} and not d.in_scope
    assert calls == [], "nothing to check, so nothing looked up (no API call either)"


def test_preempt_without_an_applicable_predicate_keeps_unknown_candidates_unlooked_up() -> None:
    class NotForThisPod(RejectNames):
        def applies_to(self, pod: PodView, ctx: Context) -> bool:
            return False

    calls: list[list[str]] = []
    e = engine(ConfiguredRule("never", NotForThisPod({"n0"})))
    d = e.preempt(POD, {"n0": Victims(("u",)), "n9": Victims(("v",))}, resolver(NODES, calls), CTX, unknown="drop")
    assert sorted(d.kept) == ["n0", "n9"] and calls == [] and not d.unknown


# -- memoization (names mode: node views from the cache are stable objects) ----------------------


class Counting(Predicate):
    """Rejects nodes labelled bad=<the pod's team>; counts evaluations; cacheable by team."""

    def __init__(self, cacheable: bool = True) -> None:
        super().__init__()
        self.calls = 0
        self.cacheable = cacheable

    def cache_key(self, pod: PodView, ctx: Context) -> str | None:
        return pod.labels.get("team", "") if self.cacheable else None

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        self.calls += 1
        return Rejection("node(s) are bad for this team") if node.labels.get("bad") == pod.labels.get("team") else None


def test_memoized_verdicts_are_reused_per_pod_key_until_the_node_changes() -> None:
    rule = Counting()
    e = engine(ConfiguredRule("count", rule))
    nodes = [NodeView("a", labels={"bad": "x"}), NodeView("b", labels={"bad": "y"})]
    team_x, team_y = PodView("p", labels={"team": "x"}), PodView("q", labels={"team": "y"})
    assert list(e.filter(team_x, nodes, CTX, memoize=True).passed) == [1]
    assert list(e.filter(team_x, nodes, CTX, memoize=True).passed) == [1]
    assert rule.calls == 2, "the second request was answered from the memo"
    assert list(e.filter(team_y, nodes, CTX, memoize=True).passed) == [0]
    assert rule.calls == 4, "another pod key is evaluated afresh"
    nodes[0] = NodeView("a", labels={"bad": "z"})  # the cache replaced a changed node
    assert list(e.filter(team_x, nodes, CTX, memoize=True).passed) == [0, 1]
    assert rule.calls == 5


def test_rules_without_a_cache_key_and_full_node_requests_are_always_evaluated() -> None:
    uncacheable = Counting(cacheable=False)
    e = engine(ConfiguredRule("count", uncacheable))
    pod = PodView("p", labels={"team": "x"})
    for _ in range(3):
        e.filter(pod, NODES, CTX, memoize=True)
    assert uncacheable.calls == 12
    cacheable = Counting()
    e = engine(ConfiguredRule("count", cacheable))
    for _ in range(3):
        e.filter(pod, NODES, CTX)  # memoize=False: full-node views are new every request
    assert cacheable.calls == 12


def test_a_memoized_verdict_expires_at_valid_until() -> None:
    from extender.policy import load_policy_text

    policy = load_policy_text(
        "predicates: [{type: node-maintenance, params: {window: {annotation: w, leadTime: 1h}}}]"
    )
    e = Engine(policy)
    node = NodeView("n", annotations={"w": "2026-11-25T12:00:00Z/2026-11-25T14:00:00Z"})
    at = lambda h, m=0: Context(now=datetime(2026, 11, 25, h, m, tzinfo=timezone.utc))  # noqa: E731
    assert list(e.filter(POD, [node], at(10), memoize=True).passed) == [0]
    assert list(e.filter(POD, [node], at(10, 59), memoize=True).passed) == [0]
    assert list(e.filter(POD, [node], at(11), memoize=True).unresolvable) == ["n"]
    assert list(e.filter(POD, [node], at(13, 59), memoize=True).unresolvable) == ["n"]
    assert list(e.filter(POD, [node], at(14), memoize=True).passed) == [0]


def test_rule_failures_are_not_memoized_and_are_reported_every_time() -> None:
    class ExplodesCacheably(Explodes):
        def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
            return ()

    e = engine(ConfiguredRule("x", ExplodesCacheably({"n1"}), on_error="deny"))
    for _ in range(2):
        d = e.filter(POD, NODES, CTX, memoize=True)
        assert d.unresolvable == {"n1": "node(s) could not be checked by x"}
        assert [f.count for f in d.failures] == [1]


def test_memoized_scores_equal_fresh_ones() -> None:
    class CachedRank(Rank):
        def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
            return ()

    e = engine(priorities=(ConfiguredRule("r", CachedRank()), ConfiguredRule("s", CachedRank(), weight=2)))
    fresh = e.prioritize(POD, NODES, CTX).scores
    assert e.prioritize(POD, NODES, CTX, memoize=True).scores == fresh
    assert e.prioritize(POD, NODES[::-1], CTX, memoize=True).scores == fresh[::-1]
    assert e.prioritize(POD, NODES[:2], CTX, memoize=True).scores == [0, 10]  # normalised per request
