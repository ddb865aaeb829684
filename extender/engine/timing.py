"""Per-rule evaluation time, measured on a sample of calls (the metric
``extender_rule_evaluation_seconds``).

Timing every rule call would cost two clock reads per rule per node evaluated; on one call in
``every`` the engine evaluates through :class:`TimedRule` proxies instead, which add up each
rule's time over the call's nodes, and reports the sums once the call is decided. Verdicts
served from the engine's caches are not evaluated, so they cost (and report) nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

from extender.engine.model import ConfiguredRule
from extender.engine.outcomes import Active, R
from extender.sdk.rules import Context, Rejection, Rule
from extender.view import NodeView, PodView

#: told a rule's name and the seconds it took over one call's nodes
RuleSecondsSink = Callable[[str, float], None]


class TimedRule:
    """A rule whose ``filter`` and ``score`` add their time to ``seconds[name]``; everything
    else (``applies_to``, ``cache_key``, ``valid_until``, ...) is the rule's own."""

    __slots__ = ("_rule", "_name", "_seconds")

    def __init__(self, rule: Rule, name: str, seconds: dict[str, float]) -> None:
        self._rule: Any = rule
        self._name = name
        self._seconds = seconds

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        started = perf_counter()
        try:
            result: Rejection | None = self._rule.filter(pod, node, ctx)
            return result
        finally:
            self._seconds[self._name] = self._seconds.get(self._name, 0.0) + perf_counter() - started

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> Any:
        started = perf_counter()
        try:
            return self._rule.score(pod, node, ctx)
        finally:
            self._seconds[self._name] = self._seconds.get(self._name, 0.0) + perf_counter() - started

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._rule, attribute)


class RuleTiming:
    """Chooses the sampled calls and reports their per-rule seconds to ``sink``."""

    def __init__(self, sink: RuleSecondsSink | None, every: int = 8) -> None:
        self._sink = sink
        self._every = every
        self._calls = 0  # unlocked: a lost increment only shifts the sample

    def sample(self, *actives: Active[R]) -> tuple[list[Active[R]], dict[str, float] | None]:
        """``actives`` as given, or (on a sampled call) with every rule timed into the
        returned dict, which :meth:`report` takes once the call is decided."""
        if self._sink is None:
            return list(actives), None
        self._calls += 1
        if self._calls % self._every:
            return list(actives), None
        seconds: dict[str, float] = {}
        timed = [
            [(self._timed(rule, seconds), forced) for rule, forced in active]
            for active in actives
        ]
        return timed, seconds

    @staticmethod
    def _timed(rule: ConfiguredRule[R], seconds: dict[str, float]) -> ConfiguredRule[R]:
        return dataclasses.replace(rule, rule=cast(R, TimedRule(rule.rule, rule.name, seconds)))

    def report(self, seconds: dict[str, float] | None) -> None:
        """Tell the sink each rule's seconds over the sampled call (rules that were not
        evaluated, e.g. every verdict came from a cache, are not reported)."""
        if seconds and self._sink is not None:
            for name, spent in seconds.items():
                self._sink(name, spent)
