"""Per-rule evaluation time (extender/engine/timing.py): one call in eight is timed, through
proxies that change no verdict or score, and reported once the call is decided."""

from __future__ import annotations

from datetime import datetime, timezone

from extender.engine import ConfiguredRule, Engine, Policy, Victims
from extender.sdk import Context, NodeView, PodView, Predicate, Priority, Rejection

CTX = Context(now=datetime(2026, 11, 25, tzinfo=timezone.utc))
NODES = [NodeView(f"n{i}", labels={"rank": str(i)}) for i in range(4)]
POD = PodView("p", "default")


class OddNodes(Predicate):
    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        return Rejection("node(s) were odd") if int(node.labels["rank"]) % 2 else None


class Rank(Priority):
    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        return float(node.labels["rank"])

    def cache_key(self, pod: PodView, ctx: Context) -> object:
        return ()


class Views:
    def get(self, name: str) -> NodeView | None:
        return next((n for n in NODES if n.name == name), None)


def timed_engine() -> tuple[Engine, list[tuple[str, float]]]:
    reported: list[tuple[str, float]] = []
    policy = Policy(
        predicates=(ConfiguredRule("odd", OddNodes()), ConfiguredRule("odd-shadow", OddNodes(), mode="shadow")),
        priorities=(ConfiguredRule("rank", Rank()),),
    )
    return Engine(policy, rule_seconds=lambda rule, seconds: reported.append((rule, seconds))), reported


def test_the_eighth_filter_call_reports_each_predicate_once_and_decides_the_same() -> None:
    engine, reported = timed_engine()
    untimed = Engine(engine.policy)
    for call in range(1, 9):
        timed, plain = engine.filter(POD, NODES, CTX), untimed.filter(POD, NODES, CTX)
        assert (list(timed.passed), timed.unresolvable, timed.shadow_rejections) == (
            list(plain.passed), plain.unresolvable, plain.shadow_rejections,
        )
        assert dict(timed.unresolvable) == {"n1": "node(s) were odd", "n3": "node(s) were odd"}
        assert len(reported) == (2 if call == 8 else 0)
    assert sorted(rule for rule, _ in reported) == ["odd", "odd-shadow"]
    assert all(seconds > 0 for _, seconds in reported)


def test_the_eighth_prioritize_call_reports_each_priority_and_scores_the_same() -> None:
    engine, reported = timed_engine()
    untimed = Engine(engine.policy)
    for _ in range(8):
        assert engine.prioritize(POD, NODES, CTX, explain=True) == untimed.prioritize(POD, NODES, CTX, explain=True)
    assert [rule for rule, _ in reported] == ["rank"]


def test_preempt_times_the_enforced_predicates() -> None:
    engine, reported = timed_engine()
    candidates = {n.name: Victims(("uid-1",)) for n in NODES}
    for _ in range(8):
        decision = engine.preempt(POD, candidates, lambda names: NODES, CTX, unknown="drop")
        assert sorted(decision.kept) == ["n0", "n2"]
    assert [rule for rule, _ in reported] == ["odd"]


def test_verdicts_served_from_the_cache_cost_and_report_nothing() -> None:
    engine, reported = timed_engine()
    names = [n.name for n in NODES]
    for _ in range(16):  # the first call evaluates (not sampled); the rest find every score kept
        decision, positions, unknown = engine.prioritize_named(POD, names, Views(), CTX)
        assert decision.scores == [0, 3, 7, 10] and unknown == []
    assert reported == []


def test_an_engine_without_a_sink_times_nothing() -> None:
    engine = Engine(timed_engine()[0].policy)
    for _ in range(8):
        engine.filter(POD, NODES, CTX)
    assert engine._timing.sample([])[1] is None
