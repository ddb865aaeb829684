"""The load-sources benchmark's machinery, reduced (a few requests, short phases): every phase
is what it says and every answer is a valid 200. Behaviour only: no timing is asserted (run
``python -m benchmarks.load_sources`` for the numbers)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.load_sources import PHASES, SERVERS, policy, run, table, valid
from extender.policy import load_policy_text


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    # 2.5 s phases: long enough for one 1 s timeout plus a 1 s interval while hanging
    return run(requests=6, rounds=2, seconds=2.5, warmup=2)


def test_every_answer_in_every_phase_is_a_valid_200(report: dict[str, Any]) -> None:
    assert [phase["phase"] for phase in report["phases"]] == list(PHASES)
    for phase in report["phases"]:
        for server in SERVERS:
            for verb, cell in phase["cells"][server].items():
                assert cell["statuses"] == {"200": cell["requests"]} and cell["requests"] >= 6, (phase["phase"], server, verb)
                assert cell["invalid"] == 0, (phase["phase"], server, verb)


def test_the_load_rules_read_the_last_good_samples_whatever_prometheus_does(report: dict[str, Any]) -> None:
    for phase in report["phases"]:
        load = phase["cells"]["load"]["filter"]
        assert load["load_rejections"] == load["requests"], phase["phase"]  # node-00001's 90 % cpu, from memory
        assert phase["cells"]["baseline"]["filter"]["load_rejections"] == 0


def test_each_phase_health_shows_the_prometheus_state(report: dict[str, Any]) -> None:
    healthy, hanging, down, back = (phase["health_after"] for phase in report["phases"])
    assert healthy["lastError"] is None and healthy["consecutiveFailures"] == 0
    assert "timed out after 1s" in hanging["lastError"] and hanging["consecutiveFailures"] >= 1
    assert "connection refused" in down["lastError"]
    assert down["consecutiveFailures"] > hanging["consecutiveFailures"]  # the streak went on, no success between
    assert back["lastError"] is None and back["consecutiveFailures"] == 0


def test_the_table_has_a_row_per_phase_server_and_verb(report: dict[str, Any]) -> None:
    text = table(report)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| phase")]
    assert len(rows) == len(PHASES) * len(SERVERS) * 2
    assert "timed out after 1s" in text and "connection refused" in text


def test_policies_and_answer_checks() -> None:
    assert not load_policy_text(policy(None)).sources
    assert set(load_policy_text(policy("http://127.0.0.1:9090")).sources) == {"prometheus"}
    assert valid("filter", b"{}") == (False, False) and valid("prioritize", b"[]") == (False, False)
