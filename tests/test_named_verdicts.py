"""Verdicts by node name per pod shape (names mode): evaluated once per node and shape, dropped
when the node cache says the node changed, when a rule's valid_until passes, or when the view
they were computed from was replaced meanwhile; and always the same answers as evaluating."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.engine import ConfiguredRule, Engine, Policy
from extender.engine.named import TABLE_LIMIT
from extender.kube.stores import NodeStore
from extender.policy import load_policy_text
from extender.sdk import Context, NodeView, PodView, Priority
from extender.service import ExtenderService
from tests.test_engine import CTX, Counting, Explodes, Rank

TEAM_X = PodView("p", labels={"team": "x"})
TEAM_Y = PodView("q", labels={"team": "y"})


class Nodes:
    """A node cache: views by name, and how often one was looked up."""

    def __init__(self, views: list[NodeView]) -> None:
        self.views = {view.name: view for view in views}
        self.lookups = 0

    def get(self, name: str) -> NodeView | None:
        self.lookups += 1
        return self.views.get(name)


def cluster() -> Nodes:
    return Nodes([NodeView("a", labels={"bad": "x"}), NodeView("b", labels={"bad": "y"}), NodeView("c")])


def test_a_repeated_shape_is_answered_without_evaluating_or_looking_up_a_node() -> None:
    rule = Counting()
    engine = Engine(Policy(predicates=(ConfiguredRule("count", rule),)))
    nodes = cluster()
    first, positions, unknown = engine.filter_named(TEAM_X, ["a", "b", "c"], nodes, CTX)
    assert (list(first.passed), dict(first.unresolvable), list(positions), unknown) == (
        [1, 2], {"a": "node(s) are bad for this team"}, [0, 1, 2], [])
    assert (rule.calls, nodes.lookups) == (3, 6), "each view read, then checked still current once its verdict is in"
    again, _, _ = engine.filter_named(PodView("other", labels={"team": "x"}), ["c", "a", "b"], nodes, CTX)
    assert (list(again.passed), dict(again.unresolvable)) == ([0, 2], {"a": "node(s) are bad for this team"})
    assert (rule.calls, nodes.lookups) == (3, 6), "same shape (team x): answered from the table"
    engine.filter_named(TEAM_Y, ["a", "b", "c"], nodes, CTX)
    assert rule.calls == 6, "another shape is evaluated afresh"


def test_a_changed_node_is_evaluated_again_and_a_relist_drops_everything() -> None:
    rule = Counting()
    engine = Engine(Policy(predicates=(ConfiguredRule("count", rule),)))
    nodes = cluster()
    engine.filter_named(TEAM_X, ["a", "b", "c"], nodes, CTX)
    nodes.views["a"] = NodeView("a", labels={"bad": "nobody"})
    engine.forget_node("a")  # what the node cache does after it applied the change
    decision, _, _ = engine.filter_named(TEAM_X, ["a", "b", "c"], nodes, CTX)
    assert list(decision.passed) == [0, 1, 2] and rule.calls == 4
    engine.forget_node(None)
    engine.filter_named(TEAM_X, ["a", "b", "c"], nodes, CTX)
    assert rule.calls == 7


def test_a_verdict_on_a_view_replaced_while_it_was_computed_is_not_kept() -> None:
    rule = Counting()
    engine = Engine(Policy(predicates=(ConfiguredRule("count", rule),)))
    nodes = cluster()
    old = nodes.views["a"]

    class Replacing(Nodes):
        """The cache replaces node a after its view was read, before the verdict is kept
        (and its change notice came before the entry existed)."""

        def get(self, name: str) -> NodeView | None:
            view = super().get(name)
            if name == "a" and view is old:
                nodes.views["a"] = NodeView("a", labels={"bad": "nobody"})
            return view

    racing = Replacing([])
    racing.views = nodes.views
    decision, _, _ = engine.filter_named(TEAM_X, ["a"], racing, CTX)
    assert list(decision.passed) == [], "computed from the old view: a is bad for team x"
    decision, _, _ = engine.filter_named(TEAM_X, ["a"], nodes, CTX)
    assert list(decision.passed) == [0], "the old verdict was not kept: the new view is evaluated"


def test_unknown_names_come_back_with_the_positions_of_the_known_ones() -> None:
    engine = Engine(Policy(predicates=(ConfiguredRule("count", Counting()),)))
    decision, positions, unknown = engine.filter_named(TEAM_X, ["zz", "a", "c", "yy"], cluster(), CTX)
    assert (list(decision.passed), list(positions), unknown) == ([1], [1, 2], ["zz", "yy"])
    assert dict(decision.unresolvable) == {"a": "node(s) are bad for this team"}


def test_uncacheable_rules_and_failures_are_evaluated_every_time() -> None:
    uncacheable = Counting(cacheable=False)
    engine = Engine(Policy(predicates=(ConfiguredRule("count", uncacheable),)))
    for _ in range(3):
        engine.filter_named(TEAM_X, ["a", "b", "c"], cluster(), CTX)
    assert uncacheable.calls == 9

    class ExplodesCacheably(Explodes):
        def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
            return ()

    engine = Engine(Policy(predicates=(ConfiguredRule("x", ExplodesCacheably({"b"}), on_error="deny"),)))
    for _ in range(2):
        decision, _, _ = engine.filter_named(TEAM_X, ["a", "b"], cluster(), CTX)
        assert dict(decision.unresolvable) == {"b": "node(s) could not be checked by x"}
        assert [f.count for f in decision.failures] == [1], "reported on every call"


def test_a_verdict_by_name_expires_at_valid_until() -> None:
    engine = Engine(load_policy_text("predicates: [{type: node-maintenance, params: {window: {annotation: w, leadTime: 1h}}}]"))
    nodes = Nodes([NodeView("n", annotations={"w": "2026-11-25T12:00:00Z/2026-11-25T14:00:00Z"})])

    def at(hour: int, minute: int = 0) -> list[int]:
        ctx = Context(now=datetime(2026, 11, 25, hour, minute, tzinfo=timezone.utc))
        return list(engine.filter_named(PodView("p"), ["n"], nodes, ctx)[0].passed)

    assert [at(10), at(10, 59), at(11), at(13, 59), at(14)] == [[0], [0], [], [], [0]]


def test_pod_shapes_beyond_the_limit_drop_the_least_recently_used_table() -> None:
    rule = Counting()
    engine = Engine(Policy(predicates=(ConfiguredRule("count", rule),)))
    nodes = cluster()
    for team in range(TABLE_LIMIT + 1):
        engine.filter_named(PodView("p", labels={"team": str(team)}), ["a"], nodes, CTX)
    assert rule.calls == TABLE_LIMIT + 1
    engine.filter_named(PodView("p", labels={"team": str(TABLE_LIMIT)}), ["a"], nodes, CTX)
    assert rule.calls == TABLE_LIMIT + 1, "the newest shape is still kept"
    engine.filter_named(PodView("p", labels={"team": "0"}), ["a"], nodes, CTX)
    assert rule.calls == TABLE_LIMIT + 2, "the oldest was dropped"


class CachedRank(Rank):
    calls = 0

    def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
        return ()

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        CachedRank.calls += 1
        return super().score(pod, node, ctx)


@settings(max_examples=60, deadline=None)
@given(
    ranks=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    requests=st.lists(st.lists(st.integers(0, 9), max_size=10), min_size=1, max_size=4),
)
def test_scores_by_name_equal_scores_of_the_views(ranks: list[int], requests: list[list[int]]) -> None:
    views = [NodeView(f"n{i}", labels={"rank": str(r)}) for i, r in enumerate(ranks)]
    nodes = Nodes(views)
    priorities: tuple[ConfiguredRule[Priority], ...] = (
        ConfiguredRule("r", CachedRank()), ConfiguredRule("s", CachedRank(), weight=2))
    named, fresh = Engine(Policy(priorities=priorities)), Engine(Policy(priorities=priorities))
    for request in requests:
        names = [f"n{i}" for i in request]  # n6..n9 may be unknown
        decision, positions, unknown = named.prioritize_named(POD, names, nodes, CTX)
        known = [nodes.views[n] for n in names if n in nodes.views]
        assert decision.scores == fresh.prioritize(POD, known, CTX).scores
        assert [names[i] for i in positions] == [v.name for v in known]
        assert unknown == [n for n in names if n not in nodes.views]


POD = PodView("p", "default")


def test_raw_scores_are_evaluated_once_per_node() -> None:
    CachedRank.calls = 0
    engine = Engine(Policy(priorities=(ConfiguredRule("r", CachedRank()),)))
    nodes = Nodes([NodeView(f"n{i}", labels={"rank": str(i)}) for i in range(4)])
    assert engine.prioritize_named(POD, ["n0", "n1", "n2", "n3"], nodes, CTX)[0].scores == [0, 3, 7, 10]
    assert engine.prioritize_named(POD, ["n1", "n2"], nodes, CTX)[0].scores == [0, 10], "normalised per request"
    assert CachedRank.calls == 4


def node_object(name: str, ready: str) -> bytes:
    return json.dumps({"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}).encode()


def test_the_node_cache_tells_the_service_of_changes() -> None:
    store = NodeStore()
    store.replace({name: NodeStore.decode(node_object(name, "True"))[1] for name in ("a", "b")})  # type: ignore[misc]
    service = ExtenderService(load_policy_text(
        'predicates: [{type: node-condition, params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}}]'), nodes=store)
    body = json.dumps({"Pod": {"metadata": {"name": "p", "namespace": "d", "uid": "u"}}, "NodeNames": ["a", "b"]}).encode()

    def passed() -> Any:
        return json.loads(service.filter(body))["NodeNames"]

    assert passed() == ["a", "b"]
    store.upsert("a", NodeStore.decode(node_object("a", "False"))[1])  # type: ignore[arg-type]
    assert passed() == ["b"]
    store.delete("b")
    assert passed() == []
    store.replace({name: NodeStore.decode(node_object(name, "True"))[1] for name in ("a", "b")})  # type: ignore[misc]
    assert passed() == ["a", "b"]


def test_rejections_follow_every_change_of_the_requested_nodes() -> None:
    rule = Counting()
    engine = Engine(Policy(predicates=(ConfiguredRule("count", rule),)))
    nodes = cluster()

    def rejected(*names: str) -> dict[str, str]:
        engine.filter_named(TEAM_X, list(names), nodes, CTX)  # fill the table
        decision, _, _ = engine.filter_named(TEAM_X, list(names), nodes, CTX)  # from the table
        assert list(decision.passed) == [i for i, n in enumerate(names) if n not in decision.unresolvable]
        return dict(decision.unresolvable)

    assert rejected("b", "c") == {}, "a is rejected but not asked for"
    assert rejected("a", "b", "c") == {"a": "node(s) are bad for this team"}
    nodes.views["a"] = NodeView("a")
    engine.forget_node("a")
    assert rejected("a", "b", "c") == {}
    nodes.views["c"] = NodeView("c", labels={"bad": "x"})
    engine.forget_node("c")
    assert rejected("c", "a") == {"c": "node(s) are bad for this team"}
