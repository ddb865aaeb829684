"""Priority node-metadata."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from extender.engine import ConfiguredRule, Engine, Policy, RuleFailure
from extender.policy import PolicyError, default_policy_text, load_policy_text
from extender.rules.node_metadata import MetadataSpec, NodeMetadataPriority, TimeReference
from extender.sdk import Context, NodeView, PodView

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
CTX = Context(now=NOW)
POD = PodView("web-1", "default")
KEY = "example.com/perf"
JAN_1 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()  # 1767225600


def make(**params: Any) -> NodeMetadataPriority:
    return NodeMetadataPriority(NodeMetadataPriority.params_schema().load(params))


def labelled(value: str | None, name: str = "n1") -> NodeView:
    return NodeView(name, labels={} if value is None else {KEY: value})


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), ("2.5", 2.5), ("-1", -1.0), (" 1e3 ", 1000.0)])
def test_numbers_score_as_themselves_for_highest_and_negated_for_lowest(value: str, expected: float) -> None:
    assert make(key=KEY, strategy="highest").score(POD, labelled(value), CTX) == expected
    assert make(key=KEY, strategy="lowest").score(POD, labelled(value), CTX) == -expected


def test_missing_key_has_no_value_unless_a_default_is_configured() -> None:
    assert make(key=KEY, strategy="highest").score(POD, labelled(None), CTX) is None
    assert make(key=KEY, strategy="highest", default=0).score(POD, labelled(None), CTX) == 0.0
    assert make(key=KEY, strategy="lowest", default="2.5").score(POD, labelled(None), CTX) == -2.5


def test_annotation_source_reads_annotations_only() -> None:
    rule = make(source="annotation", key=KEY, strategy="highest")
    assert rule.score(POD, NodeView("n1", annotations={KEY: "7"}), CTX) == 7.0
    assert rule.score(POD, NodeView("n1", labels={KEY: "7"}), CTX) is None


def test_label_source_ignores_annotations() -> None:
    assert make(key=KEY, strategy="highest").score(POD, NodeView("n1", annotations={KEY: "7"}), CTX) is None


def test_times_score_as_posix_seconds() -> None:
    newest = make(source="annotation", key=KEY, strategy="newest")
    oldest = make(source="annotation", key=KEY, strategy="oldest")
    for text in ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "1767225600"):
        node = NodeView("n1", annotations={KEY: text})
        assert newest.score(POD, node, CTX) == JAN_1
        assert oldest.score(POD, node, CTX) == -JAN_1


def test_labels_hold_times_as_epoch_seconds() -> None:
    # A label value cannot contain ':', so RFC 3339 times live in annotations.
    assert make(key=KEY, strategy="newest").score(POD, labelled("1767225600"), CTX) == JAN_1


def test_creation_timestamp_source() -> None:
    node = NodeView("n1", creation_timestamp="2026-01-01T00:00:00Z")
    assert make(source="creationTimestamp", strategy="newest").score(POD, node, CTX) == JAN_1
    assert make(source="creationTimestamp", strategy="oldest").score(POD, node, CTX) == -JAN_1


def test_missing_creation_timestamp_uses_a_now_relative_default() -> None:
    rule = make(source="creationTimestamp", strategy="oldest", default="now-30d")
    assert rule.spec.default == TimeReference(None, timedelta(days=-30))
    expected = -(NOW - timedelta(days=30)).timestamp()
    assert rule.score(POD, NodeView("n1"), CTX) == expected
    later = Context(now=NOW + timedelta(hours=1))
    assert rule.score(POD, NodeView("n1"), later) == expected - 3600


def test_time_default_may_be_an_unquoted_yaml_timestamp() -> None:
    policy = load_policy_text(
        f"""
priorities:
- type: node-metadata
  params: {{key: {KEY}, strategy: newest, default: 2026-01-01T00:00:00Z}}
"""
    )
    rule = policy.priorities[0].rule
    assert rule.score(POD, labelled(None), CTX) == JAN_1


@pytest.mark.parametrize(
    ("strategy", "value", "message"),
    [
        ("highest", "fast", f"label {KEY}='fast' on node n1 is not a number"),
        ("lowest", "NaN", f"label {KEY}='NaN' on node n1 is not a number"),
        ("highest", "1e400", f"label {KEY}='1e400' on node n1 is not a number"),
        ("newest", "yesterday", f"label {KEY}='yesterday' on node n1 is not an RFC 3339 time or epoch seconds"),
    ],
)
def test_unparseable_value_raises_naming_key_and_value(strategy: str, value: str, message: str) -> None:
    # A default covers a missing key only, never a malformed value.
    rule = make(key=KEY, strategy=strategy, default="now" if strategy == "newest" else 0)
    with pytest.raises(ValueError) as err:
        rule.score(POD, labelled(value), CTX)
    assert str(err.value) == message


def test_engine_gives_an_unparseable_node_the_neutral_score_and_reports_it() -> None:
    rule = make(key=KEY, strategy="highest")
    policy = Policy(priorities=(ConfiguredRule("node-metadata", rule, on_error="allow"),))
    nodes = [labelled("1", "a"), labelled("2", "b"), labelled("3", "c"), labelled(None, "d"), labelled("x", "e")]
    decision = Engine(policy).prioritize(POD, nodes, CTX)
    assert decision.scores == [0, 5, 10, 0, 5]
    assert decision.failures == (
        RuleFailure("node-metadata", 1, f"ValueError: label {KEY}='x' on node e is not a number", "neutral score"),
    )


def test_default_policy_entry_loads() -> None:
    document = yaml.safe_load(default_policy_text())
    (entry,) = [p for p in document["priorities"] if p["type"] == "node-metadata"]
    policy = load_policy_text(yaml.safe_dump({"priorities": [{**entry, "enabled": True}]}))
    rule = policy.priorities[0].rule
    assert isinstance(rule, NodeMetadataPriority)
    assert rule.spec == MetadataSpec("label", "extender.dev/preference", "highest", None)


def problems(params: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(f"priorities: [{{type: node-metadata, params: {params}}}]")
    return err.value.problems


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{key: k, strategy: highest, default: soon}", ["default: must be a number for strategy highest"]),
        ("{key: k, strategy: lowest, default: true}", ["default: must be a number for strategy lowest"]),
        (
            "{key: k, strategy: newest, default: 0}",
            ["default: must be an RFC 3339 time or a time such as now or now-30d for strategy newest"],
        ),
        (
            "{key: k, strategy: oldest, default: now-30x}",
            ["default: must be an RFC 3339 time or a time such as now or now-30d for strategy oldest"],
        ),
        ("{strategy: highest}", ["key: required for source label"]),
        ("{source: annotation, strategy: newest}", ["key: required for source annotation"]),
        ("{source: label, key: '', strategy: highest}", ["key: must not be empty"]),
        (
            "{source: creationTimestamp, key: k, strategy: newest}",
            ["key: not allowed with source creationTimestamp"],
        ),
        (
            "{source: creationTimestamp, strategy: highest}",
            ["strategy: must be newest or oldest for source creationTimestamp"],
        ),
        ("{key: k}", ["strategy: required"]),
        (
            "{source: node, key: k, strategy: biggest}",
            [
                "source: must be one of label, annotation, creationTimestamp",
                "strategy: must be one of highest, lowest, newest, oldest",
            ],
        ),
        ("{key: k, strategy: highest, weight: 2}", ["weight: unknown field"]),
    ],
)
def test_invalid_params_report_field_paths(params: str, expected: list[str]) -> None:
    assert problems(params) == [f"priorities[0].params.{line}" for line in expected]


NUMBERS = st.decimals(min_value=-10**6, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@given(st.lists(NUMBERS, min_size=2, max_size=8))
def test_score_order_is_value_order_for_highest_and_reversed_for_lowest(values: list[Decimal]) -> None:
    highest, lowest = make(key=KEY, strategy="highest"), make(key=KEY, strategy="lowest")
    for a in values:
        for b in values:
            node_a, node_b = labelled(str(a)), labelled(str(b))
            high_a, high_b = highest.score(POD, node_a, CTX), highest.score(POD, node_b, CTX)
            low_a, low_b = lowest.score(POD, node_a, CTX), lowest.score(POD, node_b, CTX)
            assert high_a is not None and high_b is not None and low_a is not None and low_b is not None
            assert (high_a > high_b) == (a > b) and (high_a == high_b) == (a == b)
            assert (low_a > low_b) == (a < b) and (low_a == low_b) == (a == b)


TIMES = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(timezone.utc))


@given(st.lists(TIMES, min_size=2, max_size=8))
def test_engine_ranks_newer_annotations_higher_and_older_lower(times: list[datetime]) -> None:
    nodes = [NodeView(f"n{i}", annotations={KEY: t.isoformat()}) for i, t in enumerate(times)]
    for strategy, newer_wins in (("newest", True), ("oldest", False)):
        rule = make(source="annotation", key=KEY, strategy=strategy)
        scores = Engine(Policy(priorities=(ConfiguredRule("m", rule),))).prioritize(POD, nodes, CTX).scores
        for i, a in enumerate(times):
            for j, b in enumerate(times):
                if a > b:
                    assert (scores[i] >= scores[j]) if newer_wins else (scores[i] <= scores[j])
        best = max(times) if newer_wins else min(times)
        assert scores[times.index(best)] == 10
