"""Summary decision records built from what the service has after a verb: a stand-in for the
decision record producer (README "Status page"), in the same shape, without the per-node
``table`` and with rejections grouped by reason (the engine's decisions do not say which
rule gave a reason, so ``rule`` is empty).

Built only when the service has observers; the work is O(rejected nodes) in C (a Counter)
plus O(priorities) for the best node's scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from extender.engine import FilterDecision, ScoreDecision
from extender.view import PodView

#: node names a rejection lists as examples (its count is exact)
EXAMPLE_NODES = 5


def _time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _base(verb: str, pod: PodView, mode: str, policy: str, nodes: int, outcome: str, when: datetime, took_ms: float) -> dict[str, Any]:
    return {
        "verb": verb,
        "time": _time(when),
        "pod": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "mode": mode,
        "policy": policy,
        "nodes": nodes,
        "outcome": outcome,
        "tookMs": round(took_ms, 3),
    }


def _rejections(reasons: Mapping[str, str], resolvable: bool) -> list[dict[str, Any]]:
    counts = Counter(reasons.values())  # in C
    examples: dict[str, list[str]] = {}
    missing = sum(min(count, EXAMPLE_NODES) for count in counts.values())
    for node, reason in reasons.items():
        if missing == 0:
            break  # every reason has its examples
        listed = examples.setdefault(reason, [])
        if len(listed) < EXAMPLE_NODES:
            listed.append(node)
            missing -= 1
    return [
        {"rule": "", "reason": reason, "resolvable": resolvable, "count": count, "nodes": examples.get(reason, [])}
        for reason, count in counts.most_common()
    ]


def filter_record(
    pod: PodView, mode: str, policy: str, nodes: int, decision: FilterDecision, when: datetime, took_ms: float,
    unknown: int = 0,
) -> dict[str, Any]:
    """The record of a filter (or preempt-like) answer."""
    record = _base("filter", pod, mode, policy, nodes, "answered", when, took_ms)
    record["passed"] = len(decision.passed)
    record["rejected"] = _rejections(decision.unresolvable, False) + _rejections(decision.failed, True)
    record["unknown"] = unknown
    record["shadow"] = [{"rule": rule, "wouldReject": len(would)} for rule, would in decision.shadow_rejections.items()]
    record["failures"] = [
        {"rule": f.rule, "count": f.count, "message": f.first_message, "action": f.action} for f in decision.failures
    ]
    return record


def prioritize_record(
    pod: PodView, mode: str, policy: str, names: Sequence[str], decision: ScoreDecision, when: datetime, took_ms: float
) -> dict[str, Any]:
    """The record of a prioritize answer: the best node (the first of the highest score)
    with each enforced priority's normalised score there (when the decision has them)."""
    record = _base("prioritize", pod, mode, policy, len(names), "answered", when, took_ms)
    if decision.scores:
        best = list(decision.scores).index(max(decision.scores))
        record["best"] = {
            "node": names[best],
            "score": decision.scores[best],
            "rules": {rule: round(float(column[best]), 2) for rule, column in decision.breakdown.items()},
        }
    record["failures"] = [
        {"rule": f.rule, "count": f.count, "message": f.first_message, "action": f.action} for f in decision.failures
    ]
    return record


def untouched_record(verb: str, pod: PodView, mode: str, policy: str, nodes: int, when: datetime, took_ms: float, error: str = "") -> dict[str, Any]:
    """An out-of-scope pod's record, or (``error``) a call answered with an Error."""
    record = _base(verb, pod, mode, policy, nodes, "error" if error else "out-of-scope", when, took_ms)
    if error:
        record["error"] = error
    return record
