"""Which rule gave each rejection reason: counting a call's rejections per (rule, reason)
without a pass over its rejected nodes in Python.

The engine notes (rule, reason) whenever it evaluates a rejection (a cache miss in names
mode), so on a call served from kept verdicts a decision's rejections are counted by reason
in C (``Counter`` over the reply's reason maps) and each reason's rule is one lookup. A
reason two rules both gave, or one seen after the registry filled up, is not attributed
here: callers then walk the rejections themselves (:attr:`FilterDecision.rejections`).
"""

from __future__ import annotations

from extender.sdk.rules import Rejection

#: distinct (reason, resolvable) pairs remembered (rules with per-node reasons stop here)
LIMIT = 4096


class ReasonRules:
    """(reason, resolvable) -> the one enforced rule that gave it; safe across threads
    (single dict operations; a lost race only makes a reason unattributed)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._rules: dict[tuple[str, bool], str] = {}
        self._ambiguous: set[tuple[str, bool]] = set()

    def note(self, rule: str, rejection: Rejection) -> None:
        key = (rejection.reason, rejection.resolvable)
        seen = self._rules.get(key)
        if seen is None:
            if len(self._rules) < self._limit:
                self._rules[key] = rule
        elif seen != rule:
            self._ambiguous.add(key)

    def rule_of(self, reason: str, resolvable: bool) -> str | None:
        """The rule that gives ``reason``, or None if that is not known for certain."""
        key = (reason, resolvable)
        if key in self._ambiguous:
            return None
        return self._rules.get(key)
