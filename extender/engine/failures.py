"""Rule exceptions while evaluating: collected per rule, and what a node gets instead."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from extender.engine.decisions import RuleFailure
from extender.engine.model import ConfiguredRule
from extender.engine.scoring import NEUTRAL_SCORE
from extender.sdk.rules import Rejection, Rule

R = TypeVar("R", bound=Rule)


class Failures:
    """Collects rule exceptions per rule: one summary each, not one log line per node."""

    def __init__(self) -> None:
        self._by_rule: dict[str, RuleFailure] = {}

    def record(self, rule: ConfiguredRule[R], exc: BaseException, action: str) -> None:
        seen = self._by_rule.get(rule.name)
        if seen is None:
            self._by_rule[rule.name] = RuleFailure(rule.name, 1, f"{type(exc).__name__}: {exc}", action)
        else:
            self._by_rule[rule.name] = replace(seen, count=seen.count + 1)

    def __len__(self) -> int:
        return sum(f.count for f in self._by_rule.values())

    def summary(self) -> tuple[RuleFailure, ...]:
        return tuple(self._by_rule.values())


def error_rejection(rule: ConfiguredRule[R]) -> Rejection:
    return Rejection(f"node(s) could not be checked by {rule.name}")


def error_score(rule: ConfiguredRule[R]) -> float:
    """The normalised score a node gets from a priority that raised on it."""
    return NEUTRAL_SCORE if rule.on_error == "allow" else 0.0
