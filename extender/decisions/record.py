"""Building decision records from the engine's decisions.

A record is a plain dict with camelCase keys (Kubernetes' style), the contract consumers rely on:
``verb``, ``time`` (UTC, when the call started), ``pod`` {namespace, name, uid}, ``mode``
(``names`` | ``nodes``), ``policy`` (digest), ``nodes`` (count), ``outcome`` (``answered`` |
``out-of-scope`` | ``error``), ``tookMs``; then per verb: filter and preempt ``passed``,
``rejected`` [{rule, reason, resolvable, count, nodes}], ``unknown``, ``shadow``; prioritize
``best`` {node, score, rules}, ``unknown``, ``shadow`` [{rule, wouldChange, wouldBest}];
preempt ``kept``, ``dropped`` (name -> why), ``droppedCount``, ``unknownKept``, ``fetched``;
bind ``node``, ``error``; a filter answered with an error ``error``; every answered record
``failures`` [{rule, count, message, action}]; and ``table`` when detail is asked for
(:mod:`extender.decisions.table`). Records name nodes, never hold Node or Pod objects, and
list at most ``max_nodes`` node names per list.

Building a record costs O(1) Python per call: rejections are counted by reason in C and each
reason's rule comes from the engine's registry (:mod:`extender.engine.attribution`; the rule
that rejected each node also travels in its kept verdict, walked only when a reason's rule
is ambiguous).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from operator import ne
from typing import Any

from extender.engine import FilterDecision, PreemptDecision, RuleFailure
from extender.k8s.timefmt import utc_stamp
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
    return _listed([(key, len(names), names[:max_nodes]) for key, names in groups.items()], max_nodes)


def _listed(groups: list[tuple[tuple[str, str, bool], int, list[str]]], max_nodes: int) -> list[dict[str, Any]]:
    """Largest first; beyond :data:`MAX_GROUPS` folded per rule (each rule's count stays exact)."""
    ordered = sorted(groups, key=lambda group: -group[1])
    if len(ordered) > MAX_GROUPS:  # per-node reasons
        folded: dict[tuple[str, str, bool], tuple[int, list[str]]] = {}
        for (rule, _, resolvable), count, names in ordered[MAX_GROUPS:]:
            key = (rule, OTHER_REASONS, resolvable)
            total, examples = folded.get(key, (0, []))
            folded[key] = (total + count, (examples + names)[:max_nodes])
        ordered = ordered[:MAX_GROUPS] + sorted(((k, c, n) for k, (c, n) in folded.items()), key=lambda group: -group[1])
    return [
        {"rule": rule, "reason": _text(reason), "resolvable": resolvable, "count": count, "nodes": names}
        for (rule, reason, resolvable), count, names in ordered
    ]


def _groups_by_reason(
    decision: FilterDecision, unknown_reason: str | None, max_nodes: int
) -> list[dict[str, Any]] | None:
    """:func:`rejected_groups` counted by reason in C, each reason's rule from the engine's
    registry; None if a reason's rule is not known for certain (then every rejection is walked)."""
    registry = decision.reason_rules
    if registry is None:
        return None
    groups = []
    for resolvable, by_name in ((True, decision.failed), (False, decision.unresolvable)):
        if not by_name:
            continue
        reasons = set(by_name.values())  # usually one: then no counting at all
        counts = Counter(by_name.values()) if len(reasons) > 1 else {reason: len(by_name) for reason in reasons}
        for reason, count in counts.items():
            rule = UNKNOWN_RULE if not resolvable and reason == unknown_reason else registry.rule_of(reason, resolvable)
            if rule is None:
                return None
            if len(counts) == 1:
                names = list(islice(by_name, max_nodes))
            else:  # stops at the max_nodes-th example
                names = list(islice((name for name, why in by_name.items() if why == reason), max_nodes))
            groups.append(((rule, reason, resolvable), count, names))
    return _listed(groups, max_nodes)


def filter_fields(
    record: Record, decision: FilterDecision, unknown: Sequence[str], unknown_reason: str | None, max_nodes: int
) -> Record:
    """Adds filter's keys. ``unknown``: the names the cache did not know; ``unknown_reason``:
    why they were rejected (None: they were passed)."""
    record["passed"] = len(decision.passed)
    rejected = _groups_by_reason(decision, unknown_reason, max_nodes) if decision.failed or decision.unresolvable else []
    if rejected is None:
        rejected_unknown = dict.fromkeys(unknown, unknown_reason) if unknown_reason is not None else {}
        rejected = rejected_groups(decision.rejections, rejected_unknown, max_nodes)
    record["rejected"] = rejected
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
                "wouldChange": sum(map(ne, scores, would)),  # in C: this runs on every prioritize
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
