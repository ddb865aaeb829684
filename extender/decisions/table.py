"""The record's ``table``: nodes x rules, with each node's answer from the call's own decision.

Rows: ``{"node", "verdicts", "raw", "normalised", "score", "answer"}`` (``verdicts`` for
filter, ``raw``/``normalised``/``score`` for prioritize; the other keys are empty or null),
``answer`` one of ``passed``, ``failed``, ``unresolvable``, ``scored``. A node the names-mode
cache does not know has no verdicts or scores. At most ``max_nodes`` rows (filter: in request
order; prioritize: highest score first), ``truncated`` says how many were left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from extender.engine import Policy
from extender.engine.explain import explain_predicates, explain_priorities
from extender.sdk.rules import Context
from extender.view import NodeView, PodView

Table = dict[str, Any]


def _known(views: Sequence[NodeView | None]) -> tuple[list[int], list[NodeView]]:
    positions = [i for i, view in enumerate(views) if view is not None]
    return positions, [view for view in views if view is not None]


def filter_table(
    policy: Policy,
    pod: PodView,
    ctx: Context,
    names: Sequence[str],
    views: Sequence[NodeView | None],
    passed: Sequence[int],
    failed: Mapping[str, str],
    max_nodes: int,
) -> Table:
    """Every predicate's verdict per node; ``passed`` (indices into ``names``) and ``failed``
    (resolvable rejections by name) are the call's answer, the other nodes were unresolvable."""
    shown = min(len(names), max_nodes)
    positions, known = _known(views[:shown])
    explained = explain_predicates(policy, pod, known, ctx)
    verdicts: list[dict[str, str]] = [{} for _ in range(shown)]
    for position, row in zip(positions, explained.verdicts):
        verdicts[position] = row
    passing = set(passed)
    rows = []
    for index in range(shown):
        name = names[index]
        answer = "passed" if index in passing else "failed" if name in failed else "unresolvable"
        rows.append({"node": name, "verdicts": verdicts[index], "raw": {}, "normalised": {}, "score": None, "answer": answer})
    return {"rules": explained.rules, "shadow": explained.shadow, "rows": rows, "truncated": len(names) - shown}


def prioritize_table(
    policy: Policy,
    pod: PodView,
    ctx: Context,
    names: Sequence[str],
    views: Sequence[NodeView | None],
    scores: Sequence[int],
    max_nodes: int,
) -> Table:
    """Every priority's raw and normalised score per node (normalised across the nodes the
    extender knows, as the engine does), and the call's combined score."""
    positions, known = _known(views)
    explained = explain_priorities(policy, pod, known, ctx)
    raw: list[dict[str, Any]] = [{} for _ in names]
    normalised: list[dict[str, float]] = [{} for _ in names]
    for position, raw_row, normalised_row in zip(positions, explained.raw, explained.normalised):
        raw[position], normalised[position] = raw_row, normalised_row
    order = sorted(range(len(names)), key=lambda i: -scores[i])[:max_nodes]
    rows = [
        {"node": names[i], "verdicts": {}, "raw": raw[i], "normalised": normalised[i], "score": scores[i], "answer": "scored"}
        for i in order
    ]
    return {
        "rules": explained.rules,
        "shadow": explained.shadow,
        "weights": explained.weights,
        "rows": rows,
        "truncated": len(names) - len(rows),
    }
