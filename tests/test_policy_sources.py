"""The policy's sources: section, the metrics rules read from it, and NEUTRAL scores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import pytest

from extender.engine import ConfiguredRule, Engine, Policy
from extender.engine.scoring import normalise, score_columns
from extender.measured import MetricRef, Sample, StaticLoad, fresh
from extender.policy import PolicyError, load_policy_text
from extender.sdk import NEUTRAL, Context, NodeView, PodView, Priority


def test_a_source_gets_defaults_and_only_the_keys_rules_read() -> None:
    policy = load_policy_text(
        """
sources:
  prom: {type: prometheus, url: "http://prometheus:9090"}
  unused: {type: metrics-server}
"""
    )
    assert policy.sources == {}  # no rule reads either: nothing would be started
    assert policy.metrics == frozenset()


@pytest.mark.parametrize(
    ("sources", "problem"),
    [
        ("prom: {type: prometheus, url: 'http://p:9090', maxAge: 1s}", "sources.prom.maxAge: must be at least refreshInterval"),
        ("prom: {type: prometheus, url: 'http://p:9090', timeout: 30s}", "sources.prom.timeout: must not exceed refreshInterval"),
        ("prom: {type: prometheus, url: 'http://p:9090', bogus: 1}", "sources.prom.bogus: unknown field"),
        ("prom: {type: graphite}", "sources.prom.type: must be one of prometheus, metrics-server, node-annotations"),
        ("prom: {type: prometheus}", "sources.prom.url: required"),
        ("prom: 3", "sources.prom: must be a mapping with at least a type"),
        ("prom: {type: prometheus, url: 'http://p:9090', refreshInterval: soon}", "sources.prom.refreshInterval:"),
    ],
)
def test_invalid_sources_are_reported_with_their_path(sources: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text("sources:\n  " + sources + "\n")
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_neutral_takes_the_middle_score_and_no_part_in_min_max() -> None:
    assert normalise([1.0, NEUTRAL, 3.0, None]) == [0.0, 5.0, 10.0, 0.0]
    assert normalise([NEUTRAL, NEUTRAL]) == [5.0, 5.0]
    assert normalise([NEUTRAL, 2.0]) == [5.0, 10.0]
    failed = object()
    assert score_columns([[NEUTRAL]], [1.0], [5.0], failed, 1) == [5]
    assert score_columns([[1.0, NEUTRAL, 3.0]], [1.0], [5.0], failed, 3) == [0, 5, 10]


class _ReadsLoad(Priority):
    """Scores a node by a metric; NEUTRAL where it has no fresh sample."""

    REF = MetricRef("prom", "cpu")

    def metrics(self) -> Sequence[MetricRef]:
        return (self.REF,)

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | object | None:  # type: ignore[override]
        sample = ctx.load.sample(self.REF, node.name)
        if not fresh(sample, ctx.now.timestamp(), ctx.load.max_age(self.REF)):
            return NEUTRAL
        assert sample is not None
        return -sample.value


def test_the_engine_reads_load_through_the_context_and_accepts_neutral() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc).timestamp()
    load = StaticLoad(
        {_ReadsLoad.REF: {"a": Sample(20.0, now), "b": Sample(80.0, now), "c": Sample(10.0, now - 600)}}, max_age=60
    )
    engine = Engine(Policy(priorities=(ConfiguredRule("reads", _ReadsLoad()),)))
    ctx = Context(now=datetime.fromtimestamp(now, timezone.utc), load=load)
    nodes = [NodeView("a"), NodeView("b"), NodeView("c")]
    decision = engine.prioritize(PodView("p"), nodes, ctx)
    assert decision.scores == [10, 0, 5] and not decision.failures


def test_placements_of_a_static_load_are_counted_from_a_time_on() -> None:
    load = StaticLoad(placements=(("a", 100.0, {"cpu": 0.5}), ("a", 200.0, {"cpu": 1.0}), ("b", 300.0, {"cpu": 2.0})))
    assert load.placed_since("a", 150.0).count == 1
    assert load.placed_since("a", 0.0).request("cpu") == 1.5
    assert load.placed_since("c", 0.0).count == 0
