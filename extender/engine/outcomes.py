"""Decisions assembled from each node's verdict (filter) or each priority's raw scores
(prioritize), whichever way those were found (evaluated, memoized on views, kept by name)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, TypeVar

from extender.engine.attribution import ReasonRules
from extender.engine.decisions import FilterDecision, ScoreDecision
from extender.engine.failures import Failures, error_score
from extender.engine.model import ConfiguredRule
from extender.engine.scoring import normalised_column, numeric_bounds, scaled_score, score_columns
from extender.sdk.rules import Rejection, Rule

R = TypeVar("R", bound=Rule)
#: the rules that apply to a pod, each with a rejection forced on every node (onError: deny)
Active = list[tuple[ConfiguredRule[R], Rejection | None]]
#: a node's verdict: the enforced chain's first rejection, each shadow rule's, and the name of
#: the enforced rule that rejected ("" if none). The rule's name travels inside the verdict
#: that is kept (by name or on the view), so attributing a rejection costs nothing on a hit.
Verdict = tuple[Rejection | None, tuple[Rejection | None, ...], str]
#: a raw score that failed (the column gets the rule's error score there)
FAILED: Any = object()
#: the verdict of a node every enforced predicate accepts, with no shadow predicates: one
#: object, so decisions count passing nodes by identity
PASS: Verdict = (None, (), "")


def columns(rows: Sequence[Sequence[Any]], count: int) -> list[Sequence[Any]]:
    """Rows of ``count`` values, as columns (``zip(*rows)`` is 4x slower at 5000 rows)."""
    return [list(map(itemgetter(j), rows)) for j in range(count)]


def filter_decision(
    verdicts: Sequence[Verdict],
    names: Callable[[], Sequence[str]],
    shadows: Active[Any],
    failures: Failures,
    reasons: ReasonRules | None = None,
) -> FilterDecision:
    """The decision from each node's verdict; ``names`` gives the nodes' names (only
    asked for when a node is rejected)."""
    # Identity, not equality: a Rejection's __eq__ is Python code, PASS is one object.
    if sum(map(is_, verdicts, repeat(PASS))) == len(verdicts):  # in C: the usual case, all pass
        passed = list(range(len(verdicts)))
    elif shadows:  # a verdict other than PASS may still pass the enforced chain
        passed = [index for index, verdict in enumerate(verdicts) if verdict is PASS or verdict[0] is None]
    else:
        passed = [index for index, verdict in enumerate(verdicts) if verdict is PASS]
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    rejected: list[tuple[str, Rejection, str]] = []
    if len(passed) < len(verdicts):
        named = names()
        if shadows:
            rejected = [(n, v[0], v[2]) for n, v in zip(named, verdicts) if v is not PASS and v[0] is not None]
        else:  # without shadows every verdict but PASS is a rejection
            rejected = [(n, v[0], v[2]) for n, v in zip(named, verdicts) if v is not PASS]  # type: ignore[misc]
        failed = {name: rejection.reason for name, rejection, _ in rejected if rejection.resolvable}
        unresolvable = {name: rejection.reason for name, rejection, _ in rejected if not rejection.resolvable}
    shadow_rejections: dict[str, dict[str, str]] = {rule.name: {} for rule, _ in shadows}
    if shadows:
        named = names()
        for index, (_, shadow_verdicts, _) in enumerate(verdicts):
            for (rule, _), rejection in zip(shadows, shadow_verdicts):
                if rejection is not None:
                    shadow_rejections[rule.name][named[index]] = rejection.reason
    return FilterDecision(
        in_scope=True,
        passed=passed,
        failed=failed,
        unresolvable=unresolvable,
        shadow_rejections=shadow_rejections,
        failures=failures.summary(),
        rejections=rejected,
        reason_rules=reasons,
    )


def score_decision(
    enforced: Active[Any],
    shadows: Active[Any],
    every: Sequence[Sequence[Any]],
    count: int,
    failures: Failures,
    explain: bool,
) -> ScoreDecision:
    """The scores from each priority's raw column (``FAILED`` where it raised), and each
    shadow priority's would-be scores; ``explain`` adds the normalised columns."""
    raw = every[: len(enforced)]
    weights = [rule.weight for rule, _ in enforced]
    errors = [error_score(rule) for rule, _ in enforced]
    bounds: list[tuple[Any, Any]] = []
    scores = score_columns(raw, weights, errors, FAILED, count, bounds)
    shadow_scores: dict[str, list[int]] = {}
    for (shadow, _), column in zip(shadows, every[len(enforced) :]):
        shadow_scores[shadow.name] = score_columns(
            [*raw, column], [*weights, shadow.weight], [*errors, error_score(shadow)], FAILED, count
        )
    breakdown = (
        {rule.name: normalised_column(column, error, FAILED) for (rule, _), column, error in zip(enforced, raw, errors)}
        if explain
        else {}
    )
    return ScoreDecision(
        in_scope=True,
        scores=scores,
        breakdown=breakdown,
        shadow_scores=shadow_scores,
        failures=failures.summary(),
        raw={rule.name: column for (rule, _), column in zip(enforced, raw)},
        bounds={rule.name: b for (rule, _), b in zip(enforced, bounds)} if len(bounds) == len(raw) else {},
    )


def normalised_at(
    rules: Sequence[ConfiguredRule[Any]],
    raw: Mapping[str, Sequence[Any]],
    index: int,
    bounds: Mapping[str, tuple[Any, Any]] | None = None,
) -> dict[str, float]:
    """Each priority's normalised score (0..10) of the node at ``index`` of the raw columns:
    one node's share of :func:`score_decision` (for the record's best node): O(1) per rule
    with the columns' ``bounds`` (:attr:`ScoreDecision.bounds`), else min and max in C when
    every node has a number."""
    by_name = {rule.name: rule for rule in rules}
    scores: dict[str, float] = {}
    for name, column in raw.items():
        known = (bounds or {}).get(name) or numeric_bounds(column, FAILED)
        if known is None:
            score = normalised_column(column, error_score(by_name[name]), FAILED)[index]
        else:
            score = scaled_score(column[index], *known)
        scores[name] = round(score, 4)
    return scores
