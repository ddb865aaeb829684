"""The metric store and the refresher thread, with test-local sources."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection

import pytest

from extender.engine.model import SourceSpec
from extender.load.refresher import MetricStore, Refresher, _Throttle
from extender.load.source import MetricSource, Samples, SourceError
from extender.measured import MetricRef, Sample
from extender.view import NodeView
from tests.conftest import eventually

NODES = [NodeView("n1"), NodeView("n2"), NodeView("n3")]


def spec(**kwargs: object) -> SourceSpec:
    values: dict[str, object] = {"name": "m", "type": "node-annotations", "refresh_interval": 1.0, "max_age": 60.0,
                                 "keys": frozenset({"cpu"})}  # fmt: skip
    values.update(kwargs)
    return SourceSpec(**values)  # type: ignore[arg-type]


class Scripted(MetricSource):
    """Answers each fetch with the next outcome: samples, or an exception to raise."""

    def __init__(self, outcomes: list[Samples | BaseException], **spec_args: object) -> None:
        super().__init__(spec(**spec_args), lambda: NODES)
        self.outcomes = outcomes
        self.calls: list[Collection[str]] = []

    def fetch(self, keys: Collection[str]) -> Samples:
        self.calls.append(set(keys))
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def now_samples(*nodes: str, value: float = 10.0) -> Samples:
    return {"cpu": {n: Sample(value, time.time()) for n in nodes}}


def refresher(source: MetricSource, store: MetricStore | None = None) -> Refresher:
    store = store or MetricStore({"m": source.spec.max_age})
    return Refresher(source, store, lambda: NODES, {"cpu": [("busy", "deny"), ("spread", "neutral")]})


def test_store_answers_per_source_and_key_and_unknown_sources_have_nothing() -> None:
    store = MetricStore({"m": 90.0})
    store.replace("m", {"cpu": {"n1": Sample(1.0, 5.0)}})
    assert store.sample(MetricRef("m", "cpu"), "n1") == Sample(1.0, 5.0)
    assert store.sample(MetricRef("m", "cpu"), "n2") is None
    assert store.sample(MetricRef("m", "memory"), "n1") is None
    assert store.sample(MetricRef("other", "cpu"), "n1") is None
    assert store.max_age(MetricRef("m", "cpu")) == 90.0
    assert store.max_age(MetricRef("other", "cpu")) == 0.0


def test_a_failed_fetch_keeps_the_previous_samples_and_counts_failures() -> None:
    source = Scripted([now_samples("n1", "n2", "n3"), SourceError("unreachable"), SourceError("unreachable")])
    r = refresher(source)
    r.refresh_once()
    first = r.store.sample(MetricRef("m", "cpu"), "n1")
    r.refresh_once()
    r.refresh_once()
    assert r.store.sample(MetricRef("m", "cpu"), "n1") == first
    health = r.health()
    assert health["consecutiveFailures"] == 2 and health["lastError"] == "unreachable"
    assert health["series"] == {"cpu": 3} and health["fetches"] == 3
    assert health["lastSuccessAgeSeconds"] is not None and health["lastSuccess"].endswith("Z")


def test_only_the_specs_keys_are_fetched_first_at_start_then_on_the_interval() -> None:
    source = Scripted([now_samples("n1")], keys=frozenset({"cpu", "memory"}), refresh_interval=1.0)
    r = refresher(source)
    started = time.monotonic()
    r.start()
    try:
        eventually(lambda: len(source.calls) >= 1, timeout=5)
        assert time.monotonic() - started < 0.9, "the first fetch is at start"
        eventually(lambda: len(source.calls) >= 2, timeout=5)
        assert time.monotonic() - started >= 1.0, "then after the interval"
        assert source.calls[0] == {"cpu", "memory"}
    finally:
        r.stop()


def test_stop_wakes_the_thread_at_once() -> None:
    source = Scripted([now_samples("n1")], refresh_interval=3600.0, max_age=3600.0)
    r = refresher(source)
    r.start()
    eventually(lambda: source.calls, timeout=5)
    started = time.monotonic()
    r.stop()
    assert time.monotonic() - started < 2
    assert r._thread is not None and not r._thread.is_alive()


def test_a_source_bug_is_logged_with_its_type_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    source = Scripted([KeyError("oops"), now_samples("n1", "n2", "n3")])
    r = refresher(source)
    r.start()
    try:
        eventually(lambda: len(source.calls) >= 2, timeout=10)
        eventually(lambda: r.status.consecutive_failures == 0, timeout=5)
    finally:
        r.stop()
    assert any("raised KeyError" in rec.getMessage() for rec in caplog.records)
    assert r.store.sample(MetricRef("m", "cpu"), "n1") is not None


def test_one_staleness_line_per_refresh_names_nodes_and_rules(caplog: pytest.LogCaptureFixture) -> None:
    old = time.time() - 600
    now = time.time()
    source = Scripted([{"cpu": {"n1": Sample(5.0, now), "n2": Sample(float("nan"), now), "n3": Sample(1.0, old)}}])
    r = refresher(source)
    with caplog.at_level(logging.DEBUG, "extender.load"):
        r.refresh_once()
    lines = [rec for rec in caplog.records if rec.name == "extender.load"]
    assert len(lines) == 1
    (line,) = lines
    assert line.levelno == logging.WARNING
    text = line.getMessage()
    assert "cpu: 2 node(s) without a fresh sample: n2, n3" in text
    assert "busy (onStale deny), spread (onStale neutral)" in text
    assert r.health()["staleNodes"] == {"cpu": 2}


def test_more_than_five_stale_nodes_are_summarised(caplog: pytest.LogCaptureFixture) -> None:
    many = [NodeView(f"n{i}") for i in range(8)]
    source = Scripted([{"cpu": {}}])
    r = Refresher(source, MetricStore({"m": 60.0}), lambda: many)
    with caplog.at_level(logging.WARNING, "extender.load"):
        r.refresh_once()
    assert "8 node(s) without a fresh sample: n0, n1, n2, n3, n4, +3 more" in caplog.records[-1].getMessage()


def test_repeated_identical_failures_warn_once_then_debug_until_the_repeat_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [0.0]
    source = Scripted([SourceError("metrics.k8s.io is not served (404)")])
    r = Refresher(source, MetricStore({"m": 60.0}), list, throttle=_Throttle(every=300.0, clock=lambda: clock[0]))
    levels = []
    with caplog.at_level(logging.DEBUG, "extender.load"):
        for t in (0.0, 30.0, 60.0, 299.0, 300.0, 330.0):
            clock[0] = t
            caplog.clear()
            r.refresh_once()
            levels.append(caplog.records[-1].levelno)
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.DEBUG, logging.WARNING, logging.DEBUG]
    assert "(6 failed fetch(es) in a row)" in caplog.records[-1].getMessage()


def test_a_changed_state_warns_at_once_and_recovery_is_info(caplog: pytest.LogCaptureFixture) -> None:
    fine = now_samples("n1", "n2", "n3")
    source = Scripted([SourceError("a"), SourceError("a"), SourceError("b"), fine, fine])
    r = refresher(source)
    levels = []
    with caplog.at_level(logging.DEBUG, "extender.load"):
        for _ in range(5):
            caplog.clear()
            r.refresh_once()
            levels.append(caplog.records[-1].levelno)
    assert levels == [logging.WARNING, logging.DEBUG, logging.WARNING, logging.INFO, logging.DEBUG]


def test_readers_never_wait_on_a_stuck_fetch() -> None:
    release = threading.Event()

    class Stuck(MetricSource):
        def fetch(self, keys: Collection[str]) -> Samples:
            release.wait(10)
            return {}

    store = MetricStore({"m": 60.0})
    store.replace("m", now_samples("n1"))
    r = Refresher(Stuck(spec(), list), store, list)
    r.start()
    try:
        started = time.monotonic()
        for _ in range(1000):
            assert store.sample(MetricRef("m", "cpu"), "n1") is not None
        assert time.monotonic() - started < 1
    finally:
        release.set()
        r.stop()
