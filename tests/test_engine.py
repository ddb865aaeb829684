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
    d = e.prioritize(POD, NODES, CTX)
    # rank normalised 0, 3.33, 6.67, 10; inverse 10, 6.67, 3.33, 0; (3a + b) / 4
    assert list(d.scores) == [3, 4, 6, 8]
    assert [round(v, 2) for v in d.breakdown["rank"]] == [0.0, 3.33, 6.67, 10.0]


def test_shadow_priority_reports_what_it_would_have_done_without_changing_scores() -> None:
    e = engine(priorities=(ConfiguredRule("rank", Rank()), ConfiguredRule("trial", Rank(), mode="shadow", weight=1)))
    d = e.prioritize(POD, NODES, CTX)
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


def test_preempt_drops_rejected_nodes_and_nodes_without_victims_and_keeps_unseen_ones() -> None:
    e = engine(ConfiguredRule("no-n1", RejectNames({"n1"})))
    known = {n.name: n for n in NODES[:3]}
    candidates = {
        "n0": Victims(("u0",)),
        "n1": Victims(("u1",), 2),
        "n2": Victims(()),
        "n9": Victims(("u9a", "u9b"), 1),
    }
    d = e.preempt(POD, candidates, known.get, CTX)
    assert d.kept == {"n0": Victims(("u0",)), "n9": Victims(("u9a", "u9b"), 1)}
    assert d.dropped == {"n1": "node(s) were unlucky", "n2": "no victims"}
    assert list(d.unevaluated) == ["n9"]


def test_preempt_for_out_of_scope_pods_only_drops_empty_victim_lists() -> None:
    e = engine(ConfiguredRule("all", RejectNames({"n0"})), scope=PodScope(exclude_namespaces=frozenset({"default"})))
    d = e.preempt(POD, {"n0": Victims(("u",)), "n1": Victims(())}, {n.name: n for n in NODES}.get, CTX)
    assert d.kept == {"n0": Victims(("u",))} and not d.in_scope
