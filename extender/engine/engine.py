"""The policy engine: pure decisions over read-only views. Knows nothing of HTTP or JSON."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from extender.engine.decisions import (
    FilterDecision,
    PreemptDecision,
    RuleFailure,
    ScoreDecision,
    Victims,
)
from extender.engine.model import ConfiguredPredicate, ConfiguredPriority, ConfiguredRule, Policy
from extender.engine.scoring import NEUTRAL_SCORE, combine, normalise
from extender.sdk.rules import Context, Rejection, Rule
from extender.view import NodeView, PodView

R = TypeVar("R", bound=Rule)


class _Failures:
    """Collects rule exceptions per rule: one summary each, not one log line per node."""

    def __init__(self) -> None:
        self._by_rule: dict[str, RuleFailure] = {}

    def record(self, rule: ConfiguredRule[R], exc: BaseException, action: str) -> None:
        seen = self._by_rule.get(rule.name)
        if seen is None:
            self._by_rule[rule.name] = RuleFailure(rule.name, 1, f"{type(exc).__name__}: {exc}", action)
        else:
            self._by_rule[rule.name] = replace(seen, count=seen.count + 1)

    def summary(self) -> tuple[RuleFailure, ...]:
        return tuple(self._by_rule.values())


def _error_rejection(rule: ConfiguredRule[R]) -> Rejection:
    return Rejection(f"node(s) could not be checked by {rule.name}")


class Engine:
    """Evaluates a :class:`Policy` for one pod against candidate nodes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._predicates = [r for r in policy.predicates if not r.shadow]
        self._shadow_predicates = [r for r in policy.predicates if r.shadow]
        self._priorities = [r for r in policy.priorities if not r.shadow]
        self._shadow_priorities = [r for r in policy.priorities if r.shadow]

    def in_scope(self, pod: PodView) -> bool:
        """Whether the policy applies to ``pod`` at all."""
        return self.policy.scope.matches(pod)

    # -- filter -------------------------------------------------------------------------

    def filter(self, pod: PodView, nodes: Sequence[NodeView], ctx: Context) -> FilterDecision:
        """Split ``nodes`` into passing (by index) and rejected (by name, with a reason)."""
        if not self.in_scope(pod):
            return FilterDecision(in_scope=False, passed=range(len(nodes)))
        failures = _Failures()
        enforced = self._active(self._predicates, pod, ctx, failures)
        shadows = self._active(self._shadow_predicates, pod, ctx, failures)
        passed: list[int] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for index, node in enumerate(nodes):
            rejection = self._first_rejection(enforced, pod, node, ctx, failures)
            if rejection is None:
                passed.append(index)
            elif rejection.resolvable:
                failed[node.name] = rejection.reason
            else:
                unresolvable[node.name] = rejection.reason
        shadow_rejections: dict[str, dict[str, str]] = {}
        for rule, forced in shadows:
            would = {}
            for node in nodes:
                rejection = self._check(rule, forced, pod, node, ctx, failures)
                if rejection is not None:
                    would[node.name] = rejection.reason
            shadow_rejections[rule.name] = would
        return FilterDecision(
            in_scope=True,
            passed=passed,
            failed=failed,
            unresolvable=unresolvable,
            shadow_rejections=shadow_rejections,
            failures=failures.summary(),
        )

    def reject_reason(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        """The enforced predicates' verdict on one node (used by preempt)."""
        failures = _Failures()
        return self._first_rejection(self._active(self._predicates, pod, ctx, failures), pod, node, ctx, failures)

    def _first_rejection(
        self,
        rules: Sequence[tuple[ConfiguredPredicate, Rejection | None]],
        pod: PodView,
        node: NodeView,
        ctx: Context,
        failures: _Failures,
    ) -> Rejection | None:
        for rule, forced in rules:
            rejection = self._check(rule, forced, pod, node, ctx, failures)
            if rejection is not None:
                return rejection
        return None

    @staticmethod
    def _check(
        rule: ConfiguredPredicate,
        forced: Rejection | None,
        pod: PodView,
        node: NodeView,
        ctx: Context,
        failures: _Failures,
    ) -> Rejection | None:
        if forced is not None:
            return forced
        try:
            return rule.rule.filter(pod, node, ctx)
        except Exception as exc:  # a rule bug or odd node data must not fail the request
            deny = rule.on_error == "deny"
            failures.record(rule, exc, "denied" if deny else "allowed")
            return _error_rejection(rule) if deny else None

    @staticmethod
    def _active(
        rules: Sequence[ConfiguredRule[R]], pod: PodView, ctx: Context, failures: _Failures
    ) -> list[tuple[ConfiguredRule[R], Rejection | None]]:
        """Rules that apply to this pod; a rule whose ``applies_to`` raised with
        ``onError: deny`` comes with a forced rejection for every node."""
        active: list[tuple[ConfiguredRule[R], Rejection | None]] = []
        for rule in rules:
            try:
                if rule.rule.applies_to(pod, ctx):
                    active.append((rule, None))
            except Exception as exc:
                if rule.on_error == "deny":
                    failures.record(rule, exc, "denied")
                    active.append((rule, _error_rejection(rule)))
                else:
                    failures.record(rule, exc, "allowed")
        return active

    # -- prioritize ---------------------------------------------------------------------

    def prioritize(self, pod: PodView, nodes: Sequence[NodeView], ctx: Context) -> ScoreDecision:
        """Score every node 0..10 (see :mod:`extender.engine.scoring` for the arithmetic)."""
        if not self.in_scope(pod):
            return ScoreDecision(in_scope=False, scores=[0] * len(nodes))
        failures = _Failures()
        columns: list[tuple[float, list[float]]] = []
        breakdown: dict[str, list[float]] = {}
        for rule, forced in self._active(self._priorities, pod, ctx, failures):
            column = self._column(rule, forced is not None, pod, nodes, ctx, failures)
            columns.append((rule.weight, column))
            breakdown[rule.name] = column
        scores = combine(columns, len(nodes))
        shadow_scores: dict[str, list[int]] = {}
        for rule, forced in self._active(self._shadow_priorities, pod, ctx, failures):
            column = self._column(rule, forced is not None, pod, nodes, ctx, failures)
            shadow_scores[rule.name] = combine([*columns, (rule.weight, column)], len(nodes))
        return ScoreDecision(
            in_scope=True,
            scores=scores,
            breakdown=breakdown,
            shadow_scores=shadow_scores,
            failures=failures.summary(),
        )

    @staticmethod
    def _column(
        rule: ConfiguredPriority,
        failed_for_pod: bool,
        pod: PodView,
        nodes: Sequence[NodeView],
        ctx: Context,
        failures: _Failures,
    ) -> list[float]:
        """Normalised 0..10 scores of one priority; errors get 5 (allow) or 0 (deny)."""
        error_score = NEUTRAL_SCORE if rule.on_error == "allow" else 0.0
        if failed_for_pod:
            return [error_score] * len(nodes)
        raw: list[float | None] = []
        errored: list[int] = []
        for index, node in enumerate(nodes):
            try:
                value = rule.rule.score(pod, node, ctx)
                if value is not None and not math.isfinite(value):
                    raise ValueError(f"score {value!r} is not a finite number")
                raw.append(value)
            except Exception as exc:
                failures.record(rule, exc, "neutral score" if rule.on_error == "allow" else "lowest score")
                raw.append(None)
                errored.append(index)
        column = normalise(raw)
        for index in errored:
            column[index] = error_score
        return column

    # -- preempt ------------------------------------------------------------------------

    def preempt(
        self,
        pod: PodView,
        candidates: Mapping[str, Victims],
        lookup: Callable[[str], NodeView | None],
        ctx: Context,
    ) -> PreemptDecision:
        """Keep candidate nodes that have victims and that the enforced predicates accept.

        A node the engine cannot see (``lookup`` returns None: full-node mode sends no
        nodes with preempt, and there may be no node cache) is kept: kube-scheduler's own
        filters chose it, and the extender filter still checks the nominated node later.
        """
        kept: dict[str, Victims] = {}
        dropped: dict[str, str] = {}
        unevaluated: list[str] = []
        in_scope = self.in_scope(pod)
        failures = _Failures()
        enforced = self._active(self._predicates, pod, ctx, failures) if in_scope else []
        for name, victims in candidates.items():
            if not victims.uids:
                dropped[name] = "no victims"
                continue
            if enforced:
                node = lookup(name)
                if node is None:
                    unevaluated.append(name)
                else:
                    rejection = self._first_rejection(enforced, pod, node, ctx, failures)
                    if rejection is not None:
                        dropped[name] = rejection.reason
                        continue
            kept[name] = victims
        return PreemptDecision(
            in_scope=in_scope, kept=kept, dropped=dropped, unevaluated=unevaluated, failures=failures.summary()
        )
