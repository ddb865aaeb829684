"""The policy engine: pure decisions over read-only views. Knows nothing of HTTP or JSON.

With ``memoize=True`` (nodes from the node cache, names mode) verdicts are remembered on
each node view, per rule chain and per what the rules say their verdict depends on
(:meth:`Rule.cache_key`), until the node changes (the cache replaces its view) or a rule's
:meth:`Rule.valid_until` passes. A repeated pod shape then costs one dict lookup per node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from extender.engine.decisions import (
    FilterDecision,
    PreemptDecision,
    RuleFailure,
    ScoreDecision,
    UnknownCandidates,
    Victims,
)
from extender.engine.model import ConfiguredPredicate, ConfiguredPriority, ConfiguredRule, Policy
from extender.engine.scoring import NEUTRAL_SCORE, normalised_column, score_columns
from extender.sdk.rules import NEUTRAL, Context, Rejection, Rule
from extender.view import NodeView, PodView

R = TypeVar("R", bound=Rule)
Active = list[tuple[ConfiguredRule[R], Rejection | None]]
#: a node's verdict: the enforced chain's first rejection, and each shadow rule's
Verdict = tuple[Rejection | None, tuple[Rejection | None, ...]]

#: a raw score that failed (the column gets the rule's error score there)
_FAILED = object()
#: memo entries per node before the node's memo is reset (bounds pathological pod variety)
_MEMO_LIMIT = 64


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

    def __len__(self) -> int:
        return sum(f.count for f in self._by_rule.values())

    def summary(self) -> tuple[RuleFailure, ...]:
        return tuple(self._by_rule.values())


def _error_rejection(rule: ConfiguredRule[R]) -> Rejection:
    return Rejection(f"node(s) could not be checked by {rule.name}")


def _error_score(rule: ConfiguredRule[R]) -> float:
    """The normalised score a node gets from a priority that raised on it."""
    return NEUTRAL_SCORE if rule.on_error == "allow" else 0.0


def _expiry(rule: Rule, pod: PodView, node: NodeView, ctx: Context) -> float:
    """POSIX time until which the rule's verdict on ``node`` holds (-inf: do not cache)."""
    try:
        until = rule.valid_until(pod, node, ctx)
    except Exception:
        return -math.inf
    return math.inf if until is None else until.timestamp()


def _remember(node: NodeView, key: Hashable, expires: float, value: Any) -> None:
    memo = node.memo
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = (expires, value)


V = TypeVar("V")


def _memoized(
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
            _remember(node, key, expires, value)
        append(value)
    return values


class Engine:
    """Evaluates a :class:`Policy` for one pod against candidate nodes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._predicates = [r for r in policy.predicates if not r.shadow]
        self._shadow_predicates = [r for r in policy.predicates if r.shadow]
        self._priorities = [r for r in policy.priorities if not r.shadow]
        self._shadow_priorities = [r for r in policy.priorities if r.shadow]
        # Memo keys carry this token: node views outlive engines (tests, policy changes).
        self._token = object()

    def in_scope(self, pod: PodView) -> bool:
        """Whether the policy applies to ``pod`` at all."""
        return self.policy.scope.matches(pod)

    # -- shared -------------------------------------------------------------------------

    @staticmethod
    def _active(rules: Sequence[ConfiguredRule[R]], pod: PodView, ctx: Context, failures: _Failures) -> Active[R]:
        """Rules that apply to this pod; a rule whose ``applies_to`` raised with
        ``onError: deny`` comes with a forced rejection for every node."""
        active: Active[R] = []
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

    def _memo_key(self, kind: str, active: Active[R], pod: PodView, ctx: Context) -> Hashable | None:
        """What a chain's verdict depends on besides the node, or None if it is not cacheable."""
        parts = []
        for rule, forced in active:
            if forced is not None:
                return None
            try:
                key = rule.rule.cache_key(pod, ctx)
            except Exception:
                return None
            if key is None:
                return None
            parts.append((rule.name, key))
        return (self._token, kind, tuple(parts))

    # -- filter -------------------------------------------------------------------------

    def filter(self, pod: PodView, nodes: Sequence[NodeView], ctx: Context, *, memoize: bool = False) -> FilterDecision:
        """Split ``nodes`` into passing (by index) and rejected (by name, with a reason)."""
        if not self.in_scope(pod):
            return FilterDecision(in_scope=False, passed=range(len(nodes)))
        failures = _Failures()
        enforced = self._active(self._predicates, pod, ctx, failures)
        shadows = self._active(self._shadow_predicates, pod, ctx, failures)
        verdicts = self._verdicts(enforced, shadows, pod, nodes, ctx, failures, memoize)
        rejections = [verdict[0] for verdict in verdicts]
        passed = [index for index, rejection in enumerate(rejections) if rejection is None]
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        if len(passed) < len(nodes):
            for node, rejection in zip(nodes, rejections):
                if rejection is not None:
                    (failed if rejection.resolvable else unresolvable)[node.name] = rejection.reason
        shadow_rejections: dict[str, dict[str, str]] = {rule.name: {} for rule, _ in shadows}
        if shadows:
            for node, (_, shadow_verdicts) in zip(nodes, verdicts):
                for (rule, _), rejection in zip(shadows, shadow_verdicts):
                    if rejection is not None:
                        shadow_rejections[rule.name][node.name] = rejection.reason
        return FilterDecision(
            in_scope=True,
            passed=passed,
            failed=failed,
            unresolvable=unresolvable,
            shadow_rejections=shadow_rejections,
            failures=failures.summary(),
        )

    def _verdicts(
        self,
        enforced: Active[Any],
        shadows: Active[Any],
        pod: PodView,
        nodes: Sequence[NodeView],
        ctx: Context,
        failures: _Failures,
        memoize: bool,
    ) -> list[Verdict]:
        """Per node: the enforced chain's first rejection, and each shadow rule's verdict."""
        key = self._memo_key("filter", [*enforced, *shadows], pod, ctx) if memoize else None
        if key is None:
            return [self._evaluate(enforced, shadows, pod, node, ctx, failures, False)[0] for node in nodes]

        def evaluate(node: NodeView) -> tuple[Verdict, float, bool]:
            before = len(failures)
            verdict, expires = self._evaluate(enforced, shadows, pod, node, ctx, failures, True)
            return verdict, expires, len(failures) == before

        return _memoized(nodes, key, ctx.now.timestamp(), evaluate)

    def _evaluate(
        self,
        enforced: Active[Any],
        shadows: Active[Any],
        pod: PodView,
        node: NodeView,
        ctx: Context,
        failures: _Failures,
        until: bool,
    ) -> tuple[Verdict, float]:
        rejection, expires = self._first_rejection(enforced, pod, node, ctx, failures, until)
        shadow_verdicts = []
        for shadow in shadows:
            verdict, shadow_expires = self._first_rejection([shadow], pod, node, ctx, failures, until)
            shadow_verdicts.append(verdict)
            expires = min(expires, shadow_expires)
        return (rejection, tuple(shadow_verdicts)), expires

    @staticmethod
    def _first_rejection(
        rules: Active[Any], pod: PodView, node: NodeView, ctx: Context, failures: _Failures, until: bool
    ) -> tuple[Rejection | None, float]:
        """The first rule's rejection and, if ``until``, until when that verdict holds (the
        earliest ``valid_until`` of the rules that were evaluated)."""
        expires = math.inf
        for rule, forced in rules:
            if forced is not None:
                return forced, expires
            try:
                rejection = rule.rule.filter(pod, node, ctx)
            except Exception as exc:  # a rule bug or odd node data must not fail the request
                deny = rule.on_error == "deny"
                failures.record(rule, exc, "denied" if deny else "allowed")
                rejection = _error_rejection(rule) if deny else None
            else:
                if until:
                    expires = min(expires, _expiry(rule.rule, pod, node, ctx))
            if rejection is not None:
                return rejection, expires
        return None, expires

    # -- prioritize ---------------------------------------------------------------------

    def prioritize(
        self,
        pod: PodView,
        nodes: Sequence[NodeView],
        ctx: Context,
        *,
        memoize: bool = False,
        explain: bool = False,
    ) -> ScoreDecision:
        """Score every node 0..10 (see :mod:`extender.engine.scoring` for the arithmetic).
        ``explain`` adds each priority's normalised column to the decision."""
        if not self.in_scope(pod):
            return ScoreDecision(in_scope=False, scores=[0] * len(nodes))
        failures = _Failures()
        enforced = self._active(self._priorities, pod, ctx, failures)
        shadows = self._active(self._shadow_priorities, pod, ctx, failures)
        every = self._raw_columns([*enforced, *shadows], pod, nodes, ctx, failures, memoize)
        raw = every[: len(enforced)]
        weights = [rule.weight for rule, _ in enforced]
        errors = [_error_score(rule) for rule, _ in enforced]
        scores = score_columns(raw, weights, errors, _FAILED, len(nodes))
        shadow_scores: dict[str, list[int]] = {}
        for (shadow, _), column in zip(shadows, every[len(enforced) :]):
            shadow_scores[shadow.name] = score_columns(
                [*raw, column], [*weights, shadow.weight], [*errors, _error_score(shadow)], _FAILED, len(nodes)
            )
        breakdown = (
            {rule.name: normalised_column(column, error, _FAILED) for (rule, _), column, error in zip(enforced, raw, errors)}
            if explain
            else {}
        )
        return ScoreDecision(
            in_scope=True, scores=scores, breakdown=breakdown, shadow_scores=shadow_scores, failures=failures.summary()
        )

    def _raw_columns(
        self,
        rules: Active[Any],
        pod: PodView,
        nodes: Sequence[NodeView],
        ctx: Context,
        failures: _Failures,
        memoize: bool,
    ) -> list[Sequence[Any]]:
        """One column of raw scores per priority (``_FAILED`` where it raised)."""
        if not rules:
            return []
        key = self._memo_key("score", rules, pod, ctx) if memoize else None
        if key is None:
            rows = [self._raw_scores(rules, pod, node, ctx, failures, False)[0] for node in nodes]
        else:

            def evaluate(node: NodeView) -> tuple[tuple[Any, ...], float, bool]:
                row, expires = self._raw_scores(rules, pod, node, ctx, failures, True)
                return row, expires, _FAILED not in row

            rows = _memoized(nodes, key, ctx.now.timestamp(), evaluate)
        if not rows:
            return [[] for _ in rules]
        return list(zip(*rows))

    @staticmethod
    def _raw_scores(
        rules: Active[Any], pod: PodView, node: NodeView, ctx: Context, failures: _Failures, until: bool
    ) -> tuple[tuple[Any, ...], float]:
        """Each priority's raw score of ``node`` (``_FAILED`` where it raised) and, if
        ``until``, until when they hold."""
        row: list[Any] = []
        expires = math.inf
        for rule, forced in rules:
            if forced is not None:
                row.append(_FAILED)
                continue
            try:
                value = rule.rule.score(pod, node, ctx)
                if value is not None and value is not NEUTRAL and not math.isfinite(value):
                    raise ValueError(f"score {value!r} is not a finite number")
            except Exception as exc:
                failures.record(rule, exc, "neutral score" if rule.on_error == "allow" else "lowest score")
                value = _FAILED
            else:
                if until:
                    expires = min(expires, _expiry(rule.rule, pod, node, ctx))
            row.append(value)
        return tuple(row), expires

    # -- preempt ------------------------------------------------------------------------

    def preempt(
        self,
        pod: PodView,
        candidates: Mapping[str, Victims],
        resolve: Callable[[Sequence[str]], Sequence[NodeView | None]],
        ctx: Context,
        *,
        unknown: UnknownCandidates,
        memoize: bool = False,
    ) -> PreemptDecision:
        """Keep candidate nodes that have victims and that the enforced predicates accept.

        ``resolve`` maps candidate names to views (None where the caller has none: full-node
        preempt requests carry no Node objects). It is called once, with the candidates that
        have victims, and only if an enforced predicate applies to the pod: out-of-scope pods
        and pods no predicate applies to keep every candidate with victims, unlooked-up.
        A candidate without a view is kept or dropped as ``unknown`` says: the engine cannot
        tell whether the policy accepts it.
        """
        in_scope = self.in_scope(pod)
        failures = _Failures()
        enforced = self._active(self._predicates, pod, ctx, failures) if in_scope else []
        with_victims = {name: victims for name, victims in candidates.items() if victims.uids}
        without_victims = [name for name in candidates if name not in with_victims]
        if not enforced or not with_victims:
            return PreemptDecision(in_scope, with_victims, without_victims=without_victims, failures=failures.summary())
        names = list(with_victims)
        views = resolve(names)
        known = [(name, view) for name, view in zip(names, views) if view is not None]
        unknown_names = [name for name, view in zip(names, views) if view is None]
        verdicts = self._verdicts(enforced, [], pod, [view for _, view in known], ctx, failures, memoize)
        rejected = {name: r.reason for (name, _), (r, _) in zip(known, verdicts) if r is not None}
        left_out = set(rejected) if unknown == "keep" else {*rejected, *unknown_names}
        return PreemptDecision(
            in_scope=in_scope,
            kept={name: victims for name, victims in with_victims.items() if name not in left_out},
            rejected=rejected,
            without_victims=without_victims,
            unknown=unknown_names,
            unknown_kept=unknown == "keep",
            failures=failures.summary(),
        )
