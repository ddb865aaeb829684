"""Verdicts memoized on each node view (per rule chain and pod shape), until the view is
replaced or a rule's ``valid_until`` passes: full-node views seen again, preempt candidates.
Names mode keeps them by node name instead (:mod:`extender.engine.named`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from extender.sdk.rules import Context, Rule
from extender.view import NodeView, PodView

#: memo entries per node before the node's memo is reset (bounds pathological pod variety)
MEMO_LIMIT = 64


def expiry(rule: Rule, pod: PodView, node: NodeView, ctx: Context) -> float:
    """POSIX time until which the rule's verdict on ``node`` holds (-inf: do not cache)."""
    try:
        until = rule.valid_until(pod, node, ctx)
    except Exception:
        return -math.inf
    return math.inf if until is None else until.timestamp()


def remember(node: NodeView, key: Hashable, expires: float, value: Any) -> None:
    memo = node.memo
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = (expires, value)


V = TypeVar("V")


def memoized(
    nodes: Sequence[NodeView], key: Hashable, now: float, evaluate: Callable[[NodeView], tuple[V, float, bool]]
) -> list[V]:
    """Each node's memoized value under ``key``, evaluating (and remembering, unless
    ``evaluate`` says the result must not be kept) where there is none or it expired."""
    values: list[V] = []
    append = values.append
    for node in nodes:
        hit = node.memo.get(key)
        if hit is not None and hit[0] > now:
            append(hit[1])
            continue
        value, expires, keep = evaluate(node)
        if keep and expires > now:  # a failure is re-evaluated (and reported) every time
            remember(node, key, expires, value)
        append(value)
    return values
