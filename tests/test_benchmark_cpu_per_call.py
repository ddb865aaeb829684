"""The CPU-per-call benchmark's machinery, reduced (20 calls, 50 names, the profile at 50):
every answer a well-formed 200, CPU numbers positive, the profile's groups summing to its
total. Behaviour only: no timing is asserted (run ``python -m benchmarks.cpu_per_call``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import payloads
from benchmarks.cpu_per_call import POLICY, run, table
from extender.policy import load_policy_text



@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run(calls_count=20, sizes=(50,), nodes=300, warmup=3, profile_names=50)


def test_every_call_answers_a_well_formed_200_and_costs_cpu(report: dict[str, Any]) -> None:
    names = [m["name"] for m in report["measured"]]
    assert names == ["GET /healthz", "filter, 0 names", "filter, 50 names", "prioritize, 50 names"]
    for m in report["measured"]:
        assert m["statuses"] == {200: 20} and m["malformed"] == 0, m
        assert m["cpu_ms_per_call"] >= 0 and m["p50_ms"] > 0 and m["p99_ms"] >= m["p50_ms"]
    # 20 calls can round to 0 clock ticks each; all of them together cannot
    assert sum(m["cpu_ms_per_call"] for m in report["measured"]) > 0


def test_the_profile_covers_every_call_and_its_groups_sum_to_its_total(report: dict[str, Any]) -> None:
    assert list(report["profile"]) == ["GET /healthz", "filter, 0 names", "filter, 50 names", "prioritize, 50 names"]
    for name, profile in report["profile"].items():
        assert profile["measured"]["malformed"] == 0 and profile["measured"]["cpu_ms_per_call"] > 0
        groups = dict(profile["breakdown"])
        total = groups.pop("total (profiled threads)")
        assert total > 0 and sum(groups.values()) == pytest.approx(total)
        if name.startswith(("filter", "prioritize")):
            assert groups["decode"] > 0 and groups["engine (rules)"] >= 0 and groups["encode"] > 0, name
        else:
            assert groups["decode"] == groups["encode"] == 0
    text = table(report)
    assert "GET /healthz" in text and "gunicorn HTTP" in text and "all 200, well-formed" in text


def test_the_bodies_are_the_recorded_names_mode_requests_with_the_first_names() -> None:
    body = json.loads(payloads.recorded_names_mode("prioritize", 3))
    assert body["NodeNames"] == ["node-00000", "node-00001", "node-00002"] and body["Nodes"] is None
    assert body["Pod"]["metadata"]["name"] == "gpu-1"
    policy = load_policy_text(POLICY)
    assert (len(policy.predicates), len(policy.priorities)) == (3, 1)
