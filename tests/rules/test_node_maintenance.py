"""Predicate node-maintenance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from extender.engine import ConfiguredRule, Engine, Policy
from extender.engine.model import OnError
from extender.policy import PolicyError, default_policy_text, load_policy_text
from extender.rules.node_maintenance import NodeMaintenancePredicate
from extender.sdk import Context, NodeView, PodView, Predicate, Rejection

NOW = datetime(2026, 12, 1, 21, 0, tzinfo=timezone.utc)
CTX = Context(now=NOW)
POD = PodView("web-1", "default")
WINDOW = "extender.dev/maintenance-window"
START, END = "example.com/maintenance-start", "example.com/maintenance-end"
IN_WINDOW = Rejection("node(s) in or near a maintenance window", resolvable=False)


def make(params: dict[str, Any]) -> NodeMaintenancePredicate:
    return NodeMaintenancePredicate(NodeMaintenancePredicate.params_schema().load(params))


def node(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> NodeView:
    return NodeView("n1", labels=labels or {}, annotations=annotations or {})


def at(when: datetime) -> Context:
    return Context(now=when)


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


MARKS = make(
    {
        "labels": [
            {"key": "extender.dev/maintenance"},
            {"key": "example.com/state", "values": ["draining", "maintenance"]},
        ],
        "annotations": [{"key": "extender.dev/maintenance"}],
    }
)
INTERVAL = make({"window": {"annotation": WINDOW, "leadTime": "30m"}})
PAIR = make({"window": {"startAnnotation": START, "endAnnotation": END, "leadTime": "30m"}})
W_START = datetime(2026, 12, 1, 22, 0, tzinfo=timezone.utc)
W_END = datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc)
WINDOW_NODE = node(annotations={WINDOW: "2026-12-01T22:00:00Z/2026-12-02T02:00:00Z"})


# -- labels and annotations ---------------------------------------------------------------


def test_unmarked_node_passes() -> None:
    assert MARKS.filter(POD, node({"zone": "a"}, {"note": "x"}), CTX) is None


@pytest.mark.parametrize("value", ["", "true", "anything"])
def test_label_without_values_matches_any_value(value: str) -> None:
    assert MARKS.filter(POD, node({"extender.dev/maintenance": value}), CTX) == Rejection(
        "node(s) had maintenance label extender.dev/maintenance", resolvable=False
    )


def test_label_with_values_matches_only_those_values() -> None:
    assert MARKS.filter(POD, node({"example.com/state": "draining"}), CTX) == Rejection(
        "node(s) had maintenance label example.com/state"
    )
    assert MARKS.filter(POD, node({"example.com/state": "active"}), CTX) is None


def test_annotation_rejects_with_its_own_reason() -> None:
    assert MARKS.filter(POD, node(annotations={"extender.dev/maintenance": "kernel upgrade"}), CTX) == Rejection(
        "node(s) had maintenance annotation extender.dev/maintenance"
    )


def test_labels_and_annotations_are_separate_sources() -> None:
    rule = make({"labels": [{"key": "only-label"}]})
    assert rule.filter(POD, node(annotations={"only-label": "x"}), CTX) is None


def test_label_is_reported_before_annotation() -> None:
    marked = node({"extender.dev/maintenance": "1"}, {"extender.dev/maintenance": "1"})
    assert MARKS.filter(POD, marked, CTX) == Rejection("node(s) had maintenance label extender.dev/maintenance")


def test_yaml_scalars_are_accepted_as_values() -> None:
    rule = make({"labels": [{"key": "maint", "values": [True, 1]}]})
    assert rule.filter(POD, node({"maint": "true"}), CTX) is not None
    assert rule.filter(POD, node({"maint": "1"}), CTX) is not None
    assert rule.filter(POD, node({"maint": "false"}), CTX) is None


# -- window -------------------------------------------------------------------------------


def test_node_without_window_annotation_passes() -> None:
    assert INTERVAL.filter(POD, node(annotations={"other": "x"}), CTX) is None
    assert PAIR.filter(POD, node(), CTX) is None


@pytest.mark.parametrize(
    ("now", "rejected"),
    [
        (W_START - timedelta(minutes=30, microseconds=1), False),
        (W_START - timedelta(minutes=30), True),  # lead time starts: inclusive
        (W_START, True),
        (W_END - timedelta(microseconds=1), True),
        (W_END, False),  # window over: exclusive
        (W_END + timedelta(days=1), False),
    ],
)
@pytest.mark.parametrize("form", ["interval", "pair"])
def test_window_boundaries(now: datetime, rejected: bool, form: str) -> None:
    if form == "interval":
        rule, target = INTERVAL, WINDOW_NODE
    else:
        rule, target = PAIR, node(annotations={START: stamp(W_START), END: stamp(W_END)})
    assert rule.filter(POD, target, at(now)) == (IN_WINDOW if rejected else None)


def test_lead_time_defaults_to_zero() -> None:
    rule = make({"window": {"annotation": WINDOW}})
    assert rule.filter(POD, WINDOW_NODE, at(W_START - timedelta(microseconds=1))) is None
    assert rule.filter(POD, WINDOW_NODE, at(W_START)) == IN_WINDOW


def test_window_offsets_are_honoured() -> None:
    # 23:00+01:00 is 22:00Z: the 30 min lead time starts at 21:30Z.
    shifted = node(annotations={WINDOW: "2026-12-01T23:00:00+01:00/2026-12-02T03:00:00+01:00"})
    assert INTERVAL.filter(POD, shifted, at(datetime(2026, 12, 1, 21, 29, tzinfo=timezone.utc))) is None
    assert INTERVAL.filter(POD, shifted, at(datetime(2026, 12, 1, 21, 30, tzinfo=timezone.utc))) == IN_WINDOW


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tonight", f"annotation {WINDOW}: not an interval START/END: 'tonight'"),
        ("2026-12-01T22:00:00Z/2026-12-02T02:00:00Z/x", f"annotation {WINDOW}: not an interval START/END"),
        ("2026-12-01T22:00:00Z/soon", f"annotation {WINDOW}: not an RFC 3339 timestamp: 'soon'"),
        ("/2026-12-02T02:00:00Z", f"annotation {WINDOW}: not an RFC 3339 timestamp: ''"),
        ("2026-12-02T02:00:00Z/2026-12-01T22:00:00Z", f"annotation {WINDOW}: window end is not after its start"),
        ("2026-12-01T22:00:00Z/2026-12-01T22:00:00Z", f"annotation {WINDOW}: window end is not after its start"),
    ],
)
def test_malformed_interval_raises_naming_the_annotation(value: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        INTERVAL.filter(POD, node(annotations={WINDOW: value}), CTX)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({START: "2026-12-01T22:00:00Z"}, f"node has annotation {START} but not {END}"),
        ({END: "2026-12-01T22:00:00Z"}, f"node has annotation {END} but not {START}"),
        ({START: "now", END: "2026-12-01T22:00:00Z"}, f"annotation {START}: not an RFC 3339 timestamp: 'now'"),
        (
            {START: "2026-12-01T22:00:00Z", END: "2026-12-01T21:00:00Z"},
            f"annotations {START}, {END}: window end is not after its start",
        ),
    ],
)
def test_malformed_pair_raises_naming_the_annotations(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        PAIR.filter(POD, node(annotations=annotations), CTX)
    assert str(err.value) == message


def test_marker_label_wins_over_a_malformed_window() -> None:
    rule = make({"labels": [{"key": "maint"}], "window": {"annotation": WINDOW}})
    assert rule.filter(POD, node({"maint": ""}, {WINDOW: "garbage"}), CTX) == Rejection(
        "node(s) had maintenance label maint"
    )


@pytest.mark.parametrize(("on_error", "denied"), [("deny", True), ("allow", False)])
def test_malformed_window_goes_through_on_error(on_error: OnError, denied: bool) -> None:
    policy = Policy(predicates=(ConfiguredRule[Predicate]("node-maintenance", INTERVAL, on_error=on_error),))
    nodes = [node(annotations={WINDOW: "garbage"}), NodeView("n2"), NodeView("n3", annotations={WINDOW: "x/y"})]
    decision = Engine(policy).filter(POD, nodes, CTX)
    if denied:
        assert decision.passed == [1]
        assert decision.unresolvable == {
            "n1": "node(s) could not be checked by node-maintenance",
            "n3": "node(s) could not be checked by node-maintenance",
        }
    else:
        assert decision.passed == [0, 1, 2]
        assert decision.unresolvable == {}
    assert [(f.rule, f.count, f.action) for f in decision.failures] == [
        ("node-maintenance", 2, "denied" if denied else "allowed")
    ]
    message = f"ValueError: annotation {WINDOW}: not an interval START/END: 'garbage'"
    assert decision.failures[0].first_message == message


TIMES = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(timezone.utc))
NEAR = st.one_of(st.just(timedelta(0)), st.timedeltas(timedelta(seconds=-2), timedelta(seconds=2)))


@given(
    start=TIMES,
    length=st.timedeltas(timedelta(microseconds=1), timedelta(days=30)),
    lead_seconds=st.integers(0, 3 * 86400),
    pair=st.booleans(),
    data=st.data(),
)
def test_window_verdict_is_start_minus_lead_le_now_lt_end(
    start: datetime, length: timedelta, lead_seconds: int, pair: bool, data: st.DataObject
) -> None:
    end, lead = start + length, timedelta(seconds=lead_seconds)
    # Half the draws land within 2s of an edge, where off-by-one mistakes show.
    now = data.draw(st.one_of(TIMES, st.builds(lambda d: start - lead + d, NEAR), st.builds(lambda d: end + d, NEAR)))
    if pair:
        rule = make({"window": {"startAnnotation": START, "endAnnotation": END, "leadTime": f"{lead_seconds}s"}})
        target = node(annotations={START: stamp(start), END: stamp(end)})
    else:
        rule = make({"window": {"annotation": WINDOW, "leadTime": f"{lead_seconds}s"}})
        target = node(annotations={WINDOW: f"{stamp(start)}/{stamp(end)}"})
    expected = IN_WINDOW if start - lead <= now < end else None
    assert rule.filter(POD, target, at(now)) == expected


# -- params -------------------------------------------------------------------------------


def test_default_policy_entry_loads_and_works() -> None:
    # Only the node-maintenance entry: the rest of the default policy is other rules' business.
    entries = [p for p in yaml.safe_load(default_policy_text())["predicates"] if p["type"] == "node-maintenance"]
    policy = load_policy_text(yaml.safe_dump({"predicates": entries}))
    rule = policy.predicates[0].rule
    assert rule.filter(POD, node({"extender.dev/maintenance": "true"}), CTX) is not None
    assert rule.filter(POD, node(annotations={"extender.dev/maintenance": "true"}), CTX) is not None
    assert rule.filter(POD, WINDOW_NODE, at(W_START - timedelta(minutes=30))) == IN_WINDOW
    assert rule.filter(POD, WINDOW_NODE, at(W_START - timedelta(minutes=31))) is None


def test_nothing_to_check_is_rejected() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text("predicates: [{type: node-maintenance, params: {labels: [], annotations: []}}]")
    assert err.value.problems == ["predicates[0].params: give at least one of labels, annotations, window"]
    with pytest.raises(PolicyError) as err:
        load_policy_text("predicates: [{type: node-maintenance}]")
    assert err.value.problems == ["predicates[0].params: give at least one of labels, annotations, window"]


def test_invalid_params_report_field_paths() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            """
predicates:
- type: node-maintenance
  params:
    labels:
    - key: ""
    - {key: example.com/state, values: []}
    - {values: [x]}
    annotations: [{key: ok, value: typo}]
    window: {annotation: a, startAnnotation: b, leadTime: -5m}
- name: second
  type: node-maintenance
  params:
    window: {startAnnotation: b, leadTime: soon}
- name: third
  type: node-maintenance
  params:
    window: {leadTime: 5m}
    bogus: 1
"""
        )
    assert err.value.problems == [
        "predicates[0].params.annotations[0].value: unknown field",
        "predicates[0].params.labels[0].key: must not be empty",
        "predicates[0].params.labels[1].values: list at least one value, or omit values to match any",
        "predicates[0].params.labels[2].key: required",
        "predicates[0].params.window: give either annotation or startAnnotation and endAnnotation, not both",
        "predicates[0].params.window.leadTime: must not be negative",
        "predicates[1].params.window: give annotation, or both startAnnotation and endAnnotation",
        "predicates[1].params.window.leadTime: not a duration: 'soon' (use e.g. 90s, 30m, 1h30m, 2d)",
        "predicates[2].params.bogus: unknown field",
        "predicates[2].params.window: give annotation, or both startAnnotation and endAnnotation",
    ]
