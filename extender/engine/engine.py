"""The policy engine: pure decisions over read-only views. Knows nothing of HTTP or JSON.

Verdicts depend on the node and on what the rules say they depend on (:meth:`Rule.cache_key`),
so they are kept: by node name per pod shape in names mode (:meth:`Engine.filter_named`,
:mod:`extender.engine.named`), on each node view with ``memoize=True`` otherwise
(:mod:`extender.engine.memo`), until the node changes or a rule's :meth:`Rule.valid_until`
passes. A repeated pod shape then costs one dict lookup per node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

from extender.engine.decisions import (
    FilterDecision,
    PreemptDecision,
    ScoreDecision,
    UnknownCandidates,
    Victims,
)
from extender.engine.model import ConfiguredRule, Policy
from extender.engine.attribution import ReasonRules
from extender.engine.failures import Failures as _Failures
from extender.engine.failures import error_rejection as _error_rejection
from extender.engine.memo import expiry as _expiry
from extender.engine.memo import memoized as _memoized
from extender.engine.named import NamedVerdicts, Table
from extender.engine.timing import RuleSecondsSink, RuleTiming
from extender.engine.outcomes import FAILED as _FAILED
from extender.engine.outcomes import PASS as _PASS
from extender.engine.outcomes import Active, R, Verdict, columns, filter_decision, score_decision
from extender.sdk.rules import NEUTRAL, Context, Rejection
from extender.view import NodeView, PodView


class NodesByName(Protocol):
    """Where verdicts by name find a node's view when they have no verdict for it yet."""

    def get(self, name: str) -> NodeView | None: ...


class Engine:
    """Evaluates a :class:`Policy` for one pod against candidate nodes."""

    def __init__(self, policy: Policy, rule_seconds: RuleSecondsSink | None = None) -> None:
        """``rule_seconds`` is told, for a sample of calls, each rule's evaluation time over
        the call's nodes (:mod:`extender.engine.timing`)."""
        self.policy = policy
        self._predicates = [r for r in policy.predicates if not r.shadow]
        self._shadow_predicates = [r for r in policy.predicates if r.shadow]
        self._priorities = [r for r in policy.priorities if not r.shadow]
        self._shadow_priorities = [r for r in policy.priorities if r.shadow]
        # Memo keys carry this token: node views outlive engines (tests, policy changes).
        self._token = object()
        self._named = NamedVerdicts()
        #: which rule gave each rejection reason (records count rejections per rule with it)
        self._reasons = ReasonRules()
        self._timing = RuleTiming(rule_seconds)

    def forget_node(self, name: str | None) -> None:
        """The node cache changed node ``name`` (None: it relisted): what
        :meth:`filter_named` and :meth:`prioritize_named` kept of it is dropped."""
        self._named.forget(name)

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
        (enforced, shadows), timed = self._timing.sample(enforced, shadows)
        verdicts = self._verdicts(enforced, shadows, pod, nodes, ctx, failures, memoize)
        self._timing.report(timed)
        return filter_decision(verdicts, lambda: [node.name for node in nodes], shadows, failures, self._reasons)

    def filter_named(
        self, pod: PodView, names: Sequence[str], nodes: NodesByName, ctx: Context
    ) -> tuple[FilterDecision, Sequence[int], list[str]]:
        """:meth:`filter` of the nodes ``names`` name, by verdicts kept by name per pod shape
        (:mod:`extender.engine.named`): the decision on the known names, their positions in
        ``names``, and the names ``nodes`` has no view of. The caller tells the engine of
        node changes (:meth:`forget_node`)."""
        if not self.in_scope(pod):
            return FilterDecision(in_scope=False, passed=range(len(names))), range(len(names)), []
        failures = _Failures()
        enforced = self._active(self._predicates, pod, ctx, failures)
        shadows = self._active(self._shadow_predicates, pod, ctx, failures)
        (enforced, shadows), timed = self._timing.sample(enforced, shadows)
        key = self._memo_key("filter", [*enforced, *shadows], pod, ctx)

        def evaluate(view: NodeView) -> tuple[Verdict, float, bool]:
            before = len(failures)
            verdict, expires = self._evaluate(enforced, shadows, pod, view, ctx, failures, key is not None)
            return verdict, expires, len(failures) == before

        verdicts, positions, unknown = self._by_name(key, names, nodes, ctx, evaluate)
        self._timing.report(timed)
        known = (lambda: [names[i] for i in positions]) if unknown else (lambda: names)
        return filter_decision(verdicts, known, shadows, failures, self._reasons), positions, unknown

    def _by_name(
        self,
        key: Hashable | None,
        names: Sequence[str],
        nodes: NodesByName,
        ctx: Context,
        evaluate: Callable[[NodeView], tuple[Any, float, bool]],
    ) -> tuple[list[Any], Sequence[int], list[str]]:
        """Each known name's value (from the table of ``key``, else evaluated on its view and
        kept there), the positions of the known names, and the unknown names."""
        now = ctx.now.timestamp()
        table: Table | None = self._named.table(key, now) if key is not None else None
        if table is not None:
            found = list(map(table.values.get, names))  # None where there is no entry
            if None not in found:  # a repeated shape against an unchanged cache
                return found, range(len(names)), []
        else:
            found = [None] * len(names)
        unknown: list[int] = []
        for index, value in enumerate(found):
            if value is not None:
                continue
            name = names[index]
            view = nodes.get(name)
            if view is None:
                unknown.append(index)
                continue
            value, expires, keep = evaluate(view)
            if table is not None and keep and expires > now:
                table.put(name, value, expires, lambda: nodes.get(name) is view)  # noqa: B023 - called at once
            found[index] = value
        if not unknown:
            return found, range(len(names)), []
        missing = set(unknown)
        positions = [i for i in range(len(names)) if i not in missing]
        return [found[i] for i in positions], positions, [names[i] for i in unknown]

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
        rejection, rule, expires = self._first_rejection(enforced, pod, node, ctx, failures, until)
        if rejection is not None:
            self._reasons.note(rule, rejection)
        if not shadows:  # the usual verdicts are shared objects: decisions count them by identity
            return (_PASS if rejection is None else (rejection, (), rule)), expires
        shadow_verdicts = []
        for shadow in shadows:
            verdict, _, shadow_expires = self._first_rejection([shadow], pod, node, ctx, failures, until)
            shadow_verdicts.append(verdict)
            expires = min(expires, shadow_expires)
        return (rejection, tuple(shadow_verdicts), rule), expires

    @staticmethod
    def _first_rejection(
        rules: Active[Any], pod: PodView, node: NodeView, ctx: Context, failures: _Failures, until: bool
    ) -> tuple[Rejection | None, str, float]:
        """The first rule's rejection, that rule's name ("" if none rejected) and, if
        ``until``, until when that verdict holds (the earliest ``valid_until`` of the rules
        that were evaluated)."""
        expires = math.inf
        for rule, forced in rules:
            if forced is not None:
                return forced, rule.name, expires
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
                return rejection, rule.name, expires
        return None, "", expires

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
        (enforced, shadows), timed = self._timing.sample(enforced, shadows)
        every = self._rawcolumns([*enforced, *shadows], pod, nodes, ctx, failures, memoize)
        self._timing.report(timed)
        return score_decision(enforced, shadows, every, len(nodes), failures, explain)

    def prioritize_named(
        self, pod: PodView, names: Sequence[str], nodes: NodesByName, ctx: Context, *, explain: bool = False
    ) -> tuple[ScoreDecision, Sequence[int], list[str]]:
        """:meth:`prioritize` of the nodes ``names`` name, by raw scores kept by name per pod
        shape, as :meth:`filter_named`: the decision on the known names, their positions,
        and the unknown names."""
        if not self.in_scope(pod):
            return ScoreDecision(in_scope=False, scores=[0] * len(names)), range(len(names)), []
        failures = _Failures()
        enforced = self._active(self._priorities, pod, ctx, failures)
        shadows = self._active(self._shadow_priorities, pod, ctx, failures)
        (enforced, shadows), timed = self._timing.sample(enforced, shadows)
        rules = [*enforced, *shadows]
        if not rules:
            return score_decision([], [], [], len(names), failures, explain), range(len(names)), []
        key = self._memo_key("score", rules, pod, ctx)

        def evaluate(view: NodeView) -> tuple[tuple[Any, ...], float, bool]:
            row, expires = self._raw_scores(rules, pod, view, ctx, failures, key is not None)
            return row, expires, _FAILED not in row

        rows, positions, unknown = self._by_name(key, names, nodes, ctx, evaluate)
        self._timing.report(timed)
        every: list[Sequence[Any]] = columns(rows, len(rules))
        return score_decision(enforced, shadows, every, len(rows), failures, explain), positions, unknown

    def _rawcolumns(
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
        return columns(rows, len(rules))

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
        (enforced,), timed = self._timing.sample(enforced)
        verdicts = self._verdicts(enforced, [], pod, [view for _, view in known], ctx, failures, memoize)
        self._timing.report(timed)
        rejected = {name: r.reason for (name, _), (r, _, _) in zip(known, verdicts) if r is not None}
        rejected_by = {name: rule for (name, _), (r, _, rule) in zip(known, verdicts) if r is not None}
        left_out = set(rejected) if unknown == "keep" else {*rejected, *unknown_names}
        return PreemptDecision(
            in_scope=in_scope,
            kept={name: victims for name, victims in with_victims.items() if name not in left_out},
            rejected=rejected,
            rejected_by=rejected_by,
            without_victims=without_victims,
            unknown=unknown_names,
            unknown_kept=unknown == "keep",
            failures=failures.summary(),
        )
