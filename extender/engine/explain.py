"""Every rule on every node, for explaining a decision (``extender explain``, POST /explain,
detail records). Pure: no HTTP, no wire format.

Unlike :class:`~extender.engine.Engine`, which stops at a node's first rejection, this
evaluates EVERY predicate on every node and every priority's raw and normalised score, with
the engine's own per-rule code (its ``_active``, ``_first_rejection`` and ``_raw_scores``)
and arithmetic (:func:`~extender.engine.scoring.normalised_column`), so it cannot disagree
with it. The answer per node (passed, rejected, combined score) is not computed here: callers
take it from the decision the engine made for the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extender.engine.engine import Engine
from extender.engine.failures import Failures, error_score
from extender.engine.model import ConfiguredRule, Policy
from extender.engine.outcomes import FAILED
from extender.engine.scoring import normalised_column
from extender.sdk.rules import NEUTRAL, Context
from extender.view import NodeView, PodView

PASS = "pass"
NOT_APPLICABLE = "n/a"


def _error(failures: Failures) -> str:
    found = failures.summary()
    return f"error: {found[0].first_message}" if found else "error"


@dataclass(frozen=True)
class PredicateTable:
    """Each predicate's verdict on each node: ``"pass"``, the rejection reason, ``"n/a"``
    (the rule does not apply to the pod) or ``"error: <message>"``."""

    rules: list[str]
    shadow: list[str]
    #: one dict per node (rule name -> verdict), in the order of the nodes given
    verdicts: list[dict[str, str]]


@dataclass(frozen=True)
class PriorityTable:
    """Each priority's raw score (a number, None: no value, ``"neutral"``, ``"n/a"`` or
    ``"error: <message>"``) and normalised 0..10 score (rules that apply only) per node."""

    rules: list[str]
    shadow: list[str]
    weights: dict[str, float]
    raw: list[dict[str, Any]]
    normalised: list[dict[str, float]]


def explain_predicates(policy: Policy, pod: PodView, nodes: Sequence[NodeView], ctx: Context) -> PredicateTable:
    """Every predicate (enforced, then shadow) on every node."""
    rules = [r for r in policy.predicates if not r.shadow] + [r for r in policy.predicates if r.shadow]
    rows: list[dict[str, str]] = [{} for _ in nodes]
    for rule in rules:
        failures = Failures()
        active = Engine._active([rule], pod, ctx, failures)
        if not active:
            verdict = _error(failures) if len(failures) else NOT_APPLICABLE
            for row in rows:
                row[rule.name] = verdict
            continue
        forced = active[0][1] is not None  # applies_to raised with onError: deny
        applies_error = _error(failures) if forced else ""
        for row, node in zip(rows, nodes):
            if forced:
                row[rule.name] = applies_error
                continue
            failures = Failures()
            rejection, _, _ = Engine._first_rejection(active, pod, node, ctx, failures, False)
            if len(failures):
                row[rule.name] = _error(failures)
            else:
                row[rule.name] = PASS if rejection is None else rejection.reason
    return PredicateTable([r.name for r in rules], [r.name for r in rules if r.shadow], rows)


def _shown_raw(value: Any, message: str) -> Any:
    if value is FAILED:
        return message
    if value is NEUTRAL:
        return "neutral"
    return value


def explain_priorities(policy: Policy, pod: PodView, nodes: Sequence[NodeView], ctx: Context) -> PriorityTable:
    """Every priority (enforced, then shadow) on every node: raw and normalised scores."""
    rules: list[ConfiguredRule[Any]] = [r for r in policy.priorities if not r.shadow]
    rules += [r for r in policy.priorities if r.shadow]
    raw_rows: list[dict[str, Any]] = [{} for _ in nodes]
    normalised_rows: list[dict[str, float]] = [{} for _ in nodes]
    for rule in rules:
        failures = Failures()
        active = Engine._active([rule], pod, ctx, failures)
        if not active:  # the engine leaves it out of the combined score
            shown = _error(failures) if len(failures) else NOT_APPLICABLE
            for row in raw_rows:
                row[rule.name] = shown
            continue
        forced = _error(failures) if active[0][1] is not None else ""  # applies_to raised, onError: deny
        column: list[Any] = []
        for row, node in zip(raw_rows, nodes):
            failures = Failures()
            (value,), _ = Engine._raw_scores(active, pod, node, ctx, failures, False)
            column.append(value)
            row[rule.name] = _shown_raw(value, forced or _error(failures))
        for row, score in zip(normalised_rows, normalised_column(column, error_score(rule), FAILED)):
            row[rule.name] = round(score, 4)
    return PriorityTable(
        [r.name for r in rules],
        [r.name for r in rules if r.shadow],
        {r.name: r.weight for r in rules},
        raw_rows,
        normalised_rows,
    )
