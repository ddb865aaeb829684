"""Building decision records from the engine's decisions.

A record is a plain dict with camelCase keys (Kubernetes' style), the contract consumers rely on:
``verb``, ``time`` (UTC, when the call started), ``pod`` {namespace, name, uid}, ``mode``
(``names`` | ``nodes``), ``policy`` (digest), ``nodes`` (count), ``outcome`` (``answered`` |
``out-of-scope`` | ``error``), ``tookMs``; then per verb: filter and preempt ``passed``,
``rejected`` [{rule, reason, resolvable, count, nodes}], ``unknown``, ``shadow``; prioritize
``best`` {node, score, rules}; preempt ``kept``, ``dropped``; bind ``node``, ``error``; all
``failures`` [{rule, count, message, action}]; and ``table`` when detail is asked for
(:mod:`extender.decisions.table`). Records name nodes, never hold Node or Pod objects, and
list at most ``max_nodes`` node names per list.

Building a record costs O(1) per call plus a pass over the rejected nodes (which the
decision already walked once): the rule that rejected each node travels in its verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from extender.engine import FilterDecision, PreemptDecision, RuleFailure
from extender.sdk.rules import Rejection
from extender.view import PodView

Record = dict[str, Any]

#: pseudo-rule of names-mode rejections of names the node cache does not know
UNKNOWN_RULE = "extender:unknown-node"
#: (rule, reason) groups listed before the rest are folded per rule into OTHER_REASONS
MAX_GROUPS = 50
OTHER_REASONS = "(other reasons)"
#: longest reason or message kept (rules write short categorical reasons; bugs may not)
MAX_TEXT = 300


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 3] + "..."


def utc_stamp(moment: datetime) -> str:
    """``2026-12-07T16:55:01.123456Z``."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def base(
    verb: str, pod: PodView, now: datetime, mode: str, policy: str, nodes: int, outcome: str, started: float
) -> Record:
    """The keys every record has; ``started`` is the call's ``time.perf_counter()``."""
    return {
        "verb": verb,
        "time": utc_stamp(now),
        "pod": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
        "mode": mode,
        "policy": policy,
        "nodes": nodes,
        "outcome": outcome,
        "tookMs": round((time.perf_counter() - started) * 1000, 3),
    }


def failures(found: Sequence[RuleFailure]) -> list[dict[str, Any]]:
    return [{"rule": f.rule, "count": f.count, "message": _text(f.first_message), "action": f.action} for f in found]


def rejected_groups(
    rejections: Sequence[tuple[str, Rejection, str]], unknown: Mapping[str, str], max_nodes: int
) -> list[dict[str, Any]]:
    """Rejected nodes grouped by (rule, reason, resolvable), largest first: exact counts, at
    most ``max_nodes`` example names each. ``unknown``: names the cache does not know that
    were rejected, with their reason (grouped under :data:`UNKNOWN_RULE`)."""
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for name, rejection, rule in rejections:
        key = (rule, rejection.reason, rejection.resolvable)
        names = groups.get(key)
        if names is None:
            groups[key] = [name]
        else:
            names.append(name)
    for name, reason in unknown.items():
        groups.setdefault((UNKNOWN_RULE, reason, False), []).append(name)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    if len(ordered) > MAX_GROUPS:  # per-node reasons: keep each rule's count exact, fold the rest
        folded: dict[tuple[str, str, bool], list[str]] = {}
        for (rule, _, resolvable), names in ordered[MAX_GROUPS:]:
            folded.setdefault((rule, OTHER_REASONS, resolvable), []).extend(names)
        ordered = ordered[:MAX_GROUPS] + sorted(folded.items(), key=lambda item: -len(item[1]))
    return [
        {"rule": rule, "reason": _text(reason), "resolvable": resolvable, "count": len(names), "nodes": names[:max_nodes]}
        for (rule, reason, resolvable), names in ordered
    ]


def filter_fields(
    record: Record, decision: FilterDecision, unknown: Sequence[str], unknown_reason: str | None, max_nodes: int
) -> Record:
    """Adds filter's keys. ``unknown``: the names the cache did not know; ``unknown_reason``:
    why they were rejected (None: they were passed)."""
    record["passed"] = len(decision.passed)
    rejected_unknown = dict.fromkeys(unknown, unknown_reason) if unknown_reason is not None else {}
    record["rejected"] = rejected_groups(decision.rejections, rejected_unknown, max_nodes)
    record["unknown"] = len(unknown)
    record["shadow"] = [{"rule": rule, "wouldReject": len(would)} for rule, would in decision.shadow_rejections.items()]
    record["failures"] = failures(decision.failures)
    return record


def prioritize_fields(
    record: Record,
    names: Sequence[str],
    scores: Sequence[int],
    best_rules: Callable[[int], Mapping[str, float]],
    shadow_scores: Mapping[str, Sequence[int]],
    unknown: int,
    found: Sequence[RuleFailure],
) -> Record:
    """Adds prioritize's keys: the best node (first of the highest scores, as kube-scheduler
    sees this extender's part) with each enforced priority's normalised score there."""
    if scores:
        best = scores.index(max(scores))
        record["best"] = {"node": names[best], "score": scores[best], "rules": dict(best_rules(best))}
    else:
        record["best"] = None
    record["unknown"] = unknown
    shadow = []
    for rule, would in shadow_scores.items():
        top = would.index(max(would)) if would else None
        shadow.append(
            {
                "rule": rule,
                "wouldChange": sum(1 for a, b in zip(scores, would) if a != b),
                "wouldBest": names[top] if top is not None else None,
            }
        )
    record["shadow"] = shadow
    record["failures"] = failures(found)
    return record


def preempt_fields(record: Record, decision: PreemptDecision, fetched: int, max_nodes: int) -> Record:
    """Adds preempt's keys: candidates kept, dropped (name -> why, at most ``max_nodes``),
    the rejections by rule, the unknown candidates and how many the API lookup fetched."""
    dropped = decision.dropped
    record["passed"] = record["kept"] = len(decision.kept)
    record["dropped"] = dict(list(dropped.items())[:max_nodes])
    record["droppedCount"] = len(dropped)
    rejections = [
        (name, Rejection(reason), decision.rejected_by.get(name, "")) for name, reason in decision.rejected.items()
    ]
    record["rejected"] = rejected_groups(rejections, {}, max_nodes)
    record["unknown"] = len(decision.unknown)
    record["unknownKept"] = decision.unknown_kept
    record["fetched"] = fetched
    record["failures"] = failures(decision.failures)
    return record
