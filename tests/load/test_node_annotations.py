"""The node-annotations source: crane-scheduler's ``"<value>,<timestamp>"`` annotations."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from extender.engine.model import SourceSpec
from extender.load.node_annotations import NodeAnnotationsSource, parse_annotation
from extender.load.refresher import MetricStore, Refresher
from extender.policy import PolicyError, load_policy_text
from extender.policy.sources import load_sources
from extender.view import NodeView

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")


def test_crane_writes_local_time_with_a_literal_z() -> None:
    # crane's annotator: value/100 with 5 decimals, time in its TZ (Asia/Shanghai by default)
    sample = parse_annotation("0.35123,2026-12-02T22:41:07Z", SHANGHAI)
    assert sample is not None and sample.value == pytest.approx(0.35123)
    assert sample.timestamp == datetime(2026, 12, 2, 14, 41, 7, tzinfo=timezone.utc).timestamp()
    assert parse_annotation("0.5,2026-12-02T14:41:07Z", UTC).timestamp == sample.timestamp  # type: ignore[union-attr]


def test_unix_seconds_and_rfc3339_with_an_offset_are_accepted() -> None:
    assert parse_annotation("42,1764686467", SHANGHAI).timestamp == 1764686467.0  # type: ignore[union-attr]
    at = parse_annotation("42,2026-12-02T14:41:07+00:00", SHANGHAI)
    assert at is not None and at.timestamp == datetime(2026, 12, 2, 14, 41, 7, tzinfo=timezone.utc).timestamp()


def test_scale_turns_ratios_into_percent() -> None:
    assert parse_annotation("0.35,1764686467", UTC, scale=100).value == pytest.approx(35.0)  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["", "0.3", "abc,1764686467", "0.3,yesterday", "0.3,", ",1764686467"])
def test_malformed_values_are_none(text: str) -> None:
    assert parse_annotation(text, UTC) is None


def source(**options: object) -> NodeAnnotationsSource:
    nodes = [
        NodeView("n1", annotations={"crane/cpu_usage_avg_5m": "0.5,1764686467", "cpu_usage_avg_5m": "0.9,1764686467"}),
        NodeView("n2", annotations={"crane/cpu_usage_avg_5m": "garbage"}),
        NodeView("n3"),
    ]
    options = {"prefix": "", "scale": 1.0, "time_zone": "UTC", **options}
    spec = SourceSpec("crane", "node-annotations", options=options, keys=frozenset({"cpu_usage_avg_5m"}))
    return NodeAnnotationsSource(spec, lambda: nodes)


def test_keys_are_annotation_names_with_an_optional_prefix() -> None:
    assert source().fetch(["cpu_usage_avg_5m"])["cpu_usage_avg_5m"]["n1"].value == 0.9
    fetched = source(prefix="crane/", scale=100.0).fetch(["cpu_usage_avg_5m"])["cpu_usage_avg_5m"]
    assert set(fetched) == {"n1"} and fetched["n1"].value == 50.0


def test_a_malformed_annotation_is_a_missing_node_in_the_refresh_log(caplog: pytest.LogCaptureFixture) -> None:
    s = source(prefix="crane/")
    r = Refresher(s, MetricStore({"crane": 60.0}), s.nodes, clock=lambda: 1764686467.0 + 10)
    with caplog.at_level(logging.WARNING, "extender.load"):
        r.refresh_once()
    assert r.status.last_error is None
    assert "cpu_usage_avg_5m: 2 node(s) without a fresh sample: n2, n3" in caplog.records[-1].getMessage()


def test_options_are_validated_with_their_path() -> None:
    specs = load_sources({"crane": {"type": "node-annotations", "prefix": "crane/", "scale": 100, "timeZone": "UTC"}})
    assert dict(specs["crane"].options) == {"prefix": "crane/", "scale": 100.0, "time_zone": "UTC"}
    assert load_sources({"c": {"type": "node-annotations"}})["c"].options["time_zone"] == "Asia/Shanghai"
    with pytest.raises(PolicyError) as info:
        load_policy_text("version: 1\nsources:\n  crane: {type: node-annotations, timeZone: Mars/Olympus, scale: 0}\n")
    text = str(info.value)
    assert "sources.crane.timeZone" in text and "unknown time zone 'Mars/Olympus'" in text
    assert "sources.crane.scale" in text
