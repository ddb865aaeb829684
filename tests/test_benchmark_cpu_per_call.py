"""The CPU-per-call benchmark's machinery, reduced (20 calls, 50 names, the profile at 50; a
side-by-side run against a worktree of HEAD): every answer a well-formed 200, CPU numbers
positive, the profile's groups summing to its total, the before-server running the
worktree's code. Behaviour only: no timing is asserted (run ``python -m benchmarks.cpu_per_call``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import payloads
from benchmarks.cpu_per_call import POLICY, run, table
from benchmarks.service import ROOT
from extender.policy import load_policy_text

NAMES = ["GET /healthz", "filter, 0 names", "filter, 50 names", "prioritize, 50 names"]
FULL = ["filter, 20 full nodes", "prioritize, 20 full nodes"]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run(calls_count=20, sizes=(50,), nodes=300, warmup=3, profile_names=50, full=((20, 5),))


@pytest.fixture(scope="module")
def side_by_side() -> dict[str, Any]:
    return run(calls_count=10, sizes=(50, 500), nodes=500, warmup=2, profile_names=0, before="HEAD", rounds=1,
               full=((20, 3),))


def test_every_call_answers_a_well_formed_200_and_costs_cpu(report: dict[str, Any]) -> None:
    names = [m["name"] for m in report["measured"]]
    assert names == NAMES + FULL
    for m in report["measured"]:
        assert m["statuses"] == {200: m["calls"]} and m["malformed"] == 0, m
        assert m["calls"] == (5 if "full" in m["name"] else 20)
        assert m["cpu_ms_per_call"] >= 0 and m["p50_ms"] > 0 and m["p99_ms"] >= m["p50_ms"]
    # /proc counts 10 ms ticks, and 20 fast calls may take less than one: a row may read 0
    # (the profile's exact CPU total is asserted positive below)


def test_the_profile_covers_every_call_and_its_groups_sum_to_its_total(report: dict[str, Any]) -> None:
    assert list(report["profile"]) == NAMES
    for name, profile in report["profile"].items():
        # /proc counts 10 ms ticks: a few cheap calls (the probes now cost ~0.1 ms) may read as
        # 0; the profile's own total (below) is exact
        assert profile["measured"]["malformed"] == 0 and profile["measured"]["cpu_ms_per_call"] >= 0
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


def test_side_by_side_serves_the_worktree_then_this_checkout_and_removes_the_worktree(side_by_side: dict[str, Any]) -> None:
    served = side_by_side["served"]
    assert list(served) == ["before", "now"] and served["now"]["tree"] == str(ROOT)
    before = Path(served["before"]["tree"])
    assert before != ROOT and Path(served["before"]["extender"]) == before / "extender" / "__init__.py"
    assert Path(served["now"]["extender"]) == ROOT / "extender" / "__init__.py"
    # each tree's server processes (master and worker) ran in that tree with PYTHONPATH at it:
    # with ``python -m`` the cwd leads sys.path, so that is the extender they imported
    (processes,) = served["before"]["processes"]
    assert len(processes) == 2 and all(p["cwd"] == str(before) and p["PYTHONPATH"] == str(before) for p in processes)
    (processes,) = served["now"]["processes"]
    assert len(processes) == 2 and all(p["cwd"] == str(ROOT) for p in processes)
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"], capture_output=True,
                               text=True, check=True).stdout
    assert str(before) not in worktrees and not before.exists()


def test_side_by_side_rows_pair_every_call_of_both_trees_with_ratios(side_by_side: dict[str, Any]) -> None:
    expected = ["GET /healthz", "filter, 0 names", "filter, 50 names", "filter, 500 names", "prioritize, 50 names",
                "prioritize, 500 names", *FULL]
    for label in ("before", "measured"):
        rows = side_by_side[label]
        assert [m["name"] for m in rows] == expected
        for m in rows:
            assert m["statuses"] == {200: m["calls"]} and m["malformed"] == 0, (label, m)
            assert m["calls"] == (3 if "full" in m["name"] else 10)
    assert [len(r) for r in side_by_side["rounds_measured"].values()] == [1, 1]
    assert list(side_by_side["cpu_ratio"]) == expected
    assert all(r is None or r >= 0 for r in side_by_side["cpu_ratio"].values())
    target = side_by_side["target"]
    assert list(target) == ["filter", "prioritize"] and all(t["ratio"] > 0 for t in target.values())
    text = table(side_by_side)
    assert "now/bef" in text and "p99 at 500 names (now) / p50 at 500 names (before)" in text
    assert "prioritize, 20 full nodes" in text and "all 200, well-formed" in text
