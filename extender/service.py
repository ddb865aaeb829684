"""The extender verbs: decode a request, ask the engine, log the decision, encode the reply.

Sits between the HTTP layer (which only moves bytes and status codes) and the engine
(which only sees views). Bad input raises :class:`~extender.codec.common.WireError`; every
protocol-level outcome is a reply body kube-scheduler accepts (HTTP 200).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from extender.codec import kube_scheduler as wire
from extender.codec import kube_scheduler_replies as replies
from extender.codec.common import Body
from extender.engine import (
    Engine,
    FilterDecision,
    Policy,
    PreemptDecision,
    RuleFailure,
    ScoreDecision,
    UnknownCandidates,
)
from extender.kube.binder import BindError
from extender.kube.binds import PodRequests
from extender.kube.candidates import CandidateNodes, NodeFetcher
from extender.kube.seen import SeenNodes
from extender.measured import NO_LOAD, LoadView
from extender.sdk.rules import Context
from extender.status import records
from extender.view import NodeView, PodView

log = logging.getLogger("extender.decisions")

UnknownNodes = Literal["fail", "pass"]
#: told each decision as a record dict (README "Status page"); must be quick and not raise
Observer = Callable[[dict[str, Any]], None]
UNKNOWN_NODE_REASON = "node(s) unknown to the extender (not in its node cache)"
NO_CACHE_REASON = "node(s) unknown to the extender (it runs without a node cache)"
NOT_SYNCED_ERROR = "the extender's node cache has not completed its first list yet; retry shortly"
#: how many node names a log line lists before summarising
_LOG_NODES = 10


class NodeSource(Protocol):
    """Where names-mode requests find nodes (the node watch cache)."""

    def get(self, name: str) -> NodeView | None: ...

    def get_many(self, names: Sequence[str]) -> list[NodeView | None]: ...

    @property
    def ready(self) -> bool:
        """False until the first list has completed."""

    def subscribe(self, listener: Callable[[str | None], None]) -> None:
        """Have ``listener`` told, after each change, the node's name (None: any node may
        have changed, a relist)."""


class Binder(Protocol):
    """Creates the pod's Binding in the API server; raises :class:`BindError`."""

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None: ...


@dataclass(frozen=True)
class ServiceOptions:
    """Behaviour that is deployment configuration rather than policy."""

    #: names mode: what to do with a node name the cache does not know
    unknown_nodes: UnknownNodes = "fail"
    #: preempt: what to do with a candidate no source has a view of (see :meth:`ExtenderService.preempt`)
    preempt_unknown_nodes: UnknownCandidates = "drop"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _names(mapping: dict[str, str] | Sequence[str]) -> str:
    items = list(mapping.items()) if isinstance(mapping, dict) else [(n, "") for n in mapping]
    shown = ", ".join(f"{n} ({r})" if r else n for n, r in items[:_LOG_NODES])
    more = len(items) - _LOG_NODES
    return shown + (f", +{more} more" if more > 0 else "")


class ExtenderService:
    """One instance per worker; safe to call from several threads at once."""

    def __init__(
        self,
        policy: Policy,
        *,
        nodes: NodeSource | None = None,
        seen: SeenNodes | None = None,
        fetcher: NodeFetcher | None = None,
        binder: Binder | None = None,
        options: ServiceOptions = ServiceOptions(),
        clock: Callable[[], datetime] = _utcnow,
        load: LoadView = NO_LOAD,
        pod_requests: PodRequests | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.policy = policy
        #: what rules read through ``ctx.load`` (extender.load.view.ClusterLoad when running)
        self.load = load
        self.engine = Engine(policy)
        self.nodes = nodes
        if nodes is not None:
            nodes.subscribe(self.engine.forget_node)  # the engine keeps verdicts by node name
        #: preempt's sources of Node objects: the node cache, ``seen`` (nodes of full-node
        #: requests and API lookups; None remembers none), ``fetcher`` (the API lookup)
        self.candidates = CandidateNodes(nodes, seen, fetcher)
        self.binder = binder
        self.options = options
        self.clock = clock
        #: where a bind finds the requests of the pod it binds (the Binding carries none)
        self.pod_requests = pod_requests
        #: told each filter and prioritize decision (the status page's store, Events)
        self.observers = tuple(observers)

    def _context(self, pod: PodView) -> Context:
        if self.pod_requests is not None:
            self.pod_requests.remember(pod.uid, pod.requests)
        return Context(now=self.clock(), load=self.load)

    @staticmethod
    def _without_cache(names: Sequence[str]) -> tuple[list[NodeView], list[int], list[str]]:
        """No node cache: no views, every name unknown (a names-mode request the extender
        cannot evaluate; see ``unknown_nodes``)."""
        return [], [], list(names)

    # -- filter -------------------------------------------------------------------------

    def filter(self, body: Body) -> bytes:
        """Answer ``ExtenderArgs`` with ``ExtenderFilterResult``."""
        started = time.perf_counter()
        args = wire.decode_extender_args(body)
        pod = args.pod
        ctx = self._context(pod)
        if args.node_items is not None:
            items = args.node_items
            if not self.engine.in_scope(pod):
                self._log_out_of_scope("filter", pod, len(items), started, "nodes", ctx.now)
                return replies.encode_filter_reply(node_items=items)
            views = wire.decode_node_views(body, args)
            decision = self.engine.filter(pod, views, ctx)
            self.candidates.remember(views)
            self._log_filter(pod, len(items), decision, started)
            if self.observers:
                self._observe(records.filter_record(pod, "nodes", self.policy.digest, len(items), decision, ctx.now, self._ms(started)))
            return replies.encode_filter_reply(
                node_items=[items[i] for i in decision.passed],
                failed=decision.failed,
                unresolvable=decision.unresolvable,
            )
        names = args.node_names or []
        if not self.engine.in_scope(pod):
            self._log_out_of_scope("filter", pod, len(names), started, "names", ctx.now)
            return replies.encode_filter_reply(node_names=names)
        if self.nodes is not None and not self.nodes.ready:
            # An error makes kube-scheduler retry the pod after a backoff; rejecting every
            # node as unknown would record a misleading FailedScheduling reason instead.
            # (A cache that synced and then lost the API server keeps answering below, from
            # its last state; readiness takes the replica out of the Service meanwhile.)
            log.warning("filter pod=%s/%s answered with an error: node cache not synced", pod.namespace, pod.name)
            if self.observers:
                self._observe(records.untouched_record("filter", pod, "names", self.policy.digest, len(names), ctx.now, self._ms(started), NOT_SYNCED_ERROR))
            return replies.encode_filter_reply(error=NOT_SYNCED_ERROR)
        if self.nodes is not None:
            decision, positions, unknown = self.engine.filter_named(pod, names, self.nodes, ctx)
        else:
            views, positions, unknown = self._without_cache(names)
            decision = self.engine.filter(pod, views, ctx, memoize=True)
        if unknown:
            decision = self._with_unknown(names, positions, unknown, decision)
        self._log_filter(pod, len(names), decision, started)
        if self.observers:
            self._observe(records.filter_record(pod, "names", self.policy.digest, len(names), decision, ctx.now, self._ms(started), len(unknown)))
        return replies.encode_filter_reply(
            node_names=names if len(decision.passed) == len(names) else [names[i] for i in decision.passed],
            failed=decision.failed,
            unresolvable=decision.unresolvable,
        )

    def _with_unknown(
        self, names: Sequence[str], positions: Sequence[int], unknown: Sequence[str], decision: FilterDecision
    ) -> FilterDecision:
        """The decision on the known nodes, extended to names the cache does not know."""
        passed = [positions[i] for i in decision.passed]
        unresolvable = dict(decision.unresolvable)
        if self.options.unknown_nodes == "pass":
            unknown_names = set(unknown)
            passed = sorted([*passed, *(i for i, name in enumerate(names) if name in unknown_names)])
        else:
            reason = UNKNOWN_NODE_REASON if self.nodes is not None else NO_CACHE_REASON
            unresolvable.update((name, reason) for name in unknown)
        return FilterDecision(True, passed, decision.failed, unresolvable, decision.shadow_rejections, decision.failures)

    # -- prioritize ---------------------------------------------------------------------

    def prioritize(self, body: Body) -> bytes:
        """Answer ``ExtenderArgs`` with a ``HostPriorityList`` (bare array, ints 0..10)."""
        started = time.perf_counter()
        args = wire.decode_scoring_args(body)
        pod = args.pod
        ctx = self._context(pod)
        if args.nodes is not None:
            views = args.nodes
            names = [v.name for v in views]
            if not self.engine.in_scope(pod):
                self._log_out_of_scope("prioritize", pod, len(names), started, "nodes", ctx.now)
                return replies.encode_host_priorities((n, 0) for n in names)
            explain = bool(self.observers) or log.isEnabledFor(logging.DEBUG)
            decision = self.engine.prioritize(pod, views, ctx, explain=explain)
            self.candidates.remember(views)
            self._log_prioritize(pod, names, decision, started)
            if self.observers:
                self._observe(records.prioritize_record(pod, "nodes", self.policy.digest, names, decision, ctx.now, self._ms(started)))
            return replies.encode_host_priorities(zip(names, decision.scores))
        names = list(args.node_names or [])
        if not self.engine.in_scope(pod):
            self._log_out_of_scope("prioritize", pod, len(names), started, "names", ctx.now)
            return replies.encode_host_priorities((n, 0) for n in names)
        explain = bool(self.observers) or log.isEnabledFor(logging.DEBUG)
        if self.nodes is not None:
            decision, positions, unknown = self.engine.prioritize_named(pod, names, self.nodes, ctx, explain=explain)
        else:
            views, positions, unknown = self._without_cache(names)
            decision = self.engine.prioritize(pod, views, ctx, memoize=True, explain=explain)
        if unknown:  # unknown nodes get the lowest score

            def expand(scores: Sequence[float]) -> list[Any]:
                full: list[Any] = [0] * len(names)
                for index, score in zip(positions, scores):
                    full[index] = score
                return full

            shadow = {rule: expand(scores) for rule, scores in decision.shadow_scores.items()}
            breakdown = {rule: expand(column) for rule, column in decision.breakdown.items()}
            decision = ScoreDecision(True, expand(decision.scores), breakdown, shadow, decision.failures)
        self._log_prioritize(pod, names, decision, started)
        if self.observers:
            self._observe(records.prioritize_record(pod, "names", self.policy.digest, names, decision, ctx.now, self._ms(started)))
        return replies.encode_host_priorities(zip(names, decision.scores))

    # -- preempt ------------------------------------------------------------------------

    def preempt(self, body: Body) -> bytes:
        """Answer ``ExtenderPreemptionArgs`` with ``NodeNameToMetaVictims``, whatever form came in.

        Candidates are checked against the node cache, then the nodes seen in earlier
        full-node requests, then the API server (if the lookup is on); one known nowhere is
        kept or dropped as ``options.preempt_unknown_nodes`` says.
        """
        started = time.perf_counter()
        args = wire.decode_preemption_args(body)
        fetched = 0

        def resolve(names: Sequence[str]) -> Sequence[NodeView | None]:
            nonlocal fetched
            views, fetched = self.candidates.resolve(names)
            return views

        decision = self.engine.preempt(
            args.pod,
            args.candidates,
            resolve,
            self._context(args.pod),
            unknown=self.options.preempt_unknown_nodes,
            memoize=True,  # every source's views are long-lived objects a verdict can be kept on
        )
        self._log_preempt(args.pod, len(args.candidates), decision, fetched, started)
        return replies.encode_preempt_reply(decision.kept)

    # -- bind ---------------------------------------------------------------------------

    def bind(self, body: Body) -> bytes:
        """Answer ``ExtenderBindingArgs`` with ``ExtenderBindingResult``."""
        args = wire.decode_binding_args(body)
        where = f"pod={args.pod_namespace}/{args.pod_name} node={args.node}"
        if not self.policy.bind_enabled:
            log.warning("bind refused, not enabled in the policy: %s", where)
            return replies.encode_bind_reply(
                "bind is not configured on this extender (set bind.enabled: true in the policy), "
                "or remove bindVerb from the KubeSchedulerConfiguration"
            )
        if self.binder is None:
            log.error("bind enabled but no Kubernetes API client is configured: %s", where)
            return replies.encode_bind_reply(
                "bind is enabled in the policy but the extender has no Kubernetes API access configured"
            )
        try:
            self.binder.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
        except BindError as exc:
            log.warning("bind failed: %s: %s", where, exc)
            return replies.encode_bind_reply(str(exc))
        log.info("bound %s", where)
        return replies.encode_bind_reply("")

    # -- decision log -------------------------------------------------------------------

    def _observe(self, record: dict[str, Any]) -> None:
        """Tell the observers; one failing must not fail the call nor keep the others from it."""
        for observer in self.observers:
            try:
                observer(record)
            except Exception:  # noqa: BLE001 - an observer's bug is logged, never the verb's answer
                log.exception("decision observer %r failed", observer)

    @staticmethod
    def _ms(started: float) -> float:
        return (time.perf_counter() - started) * 1000

    @staticmethod
    def _elapsed(started: float) -> str:
        return f"{(time.perf_counter() - started) * 1000:.2f}ms"

    def _log_out_of_scope(self, verb: str, pod: PodView, count: int, started: float, mode: str, now: datetime) -> None:
        if self.observers:
            self._observe(records.untouched_record(verb, pod, mode, self.policy.digest, count, now, self._ms(started)))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s pod=%s/%s out of policy scope: %d node(s) untouched took=%s",
                verb, pod.namespace, pod.name, count, self._elapsed(started),
            )

    def _log_failures(self, verb: str, pod: PodView, failures: Sequence[RuleFailure]) -> None:
        for f in failures:
            log.warning(
                "%s pod=%s/%s rule=%s raised on %d evaluation(s), %s: %s",
                verb, pod.namespace, pod.name, f.rule, f.count, f.action, f.first_message,
            )

    def _log_filter(self, pod: PodView, count: int, d: FilterDecision, started: float) -> None:
        log.info(
            "filter pod=%s/%s nodes=%d passed=%d failed=%d unresolvable=%d took=%s",
            pod.namespace, pod.name, count, len(d.passed), len(d.failed), len(d.unresolvable),
            self._elapsed(started),
        )
        if log.isEnabledFor(logging.DEBUG) and (d.failed or d.unresolvable):
            log.debug("filter pod=%s/%s rejected: %s", pod.namespace, pod.name, _names({**d.failed, **d.unresolvable}))
        for rule, would in d.shadow_rejections.items():
            log.info(
                "shadow predicate=%s pod=%s/%s would reject %d/%d node(s)%s",
                rule, pod.namespace, pod.name, len(would), count, f": {_names(dict(would))}" if would else "",
            )
        self._log_failures("filter", pod, d.failures)

    def _log_prioritize(self, pod: PodView, names: Sequence[str], d: ScoreDecision, started: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        best = d.scores.index(max(d.scores)) if d.scores else None
        log.info(
            "prioritize pod=%s/%s nodes=%d best=%s took=%s",
            pod.namespace, pod.name, len(names),
            f"{names[best]}:{d.scores[best]}" if best is not None else "-", self._elapsed(started),
        )
        if log.isEnabledFor(logging.DEBUG):
            for rule, column in d.breakdown.items():
                log.debug(
                    "prioritize pod=%s/%s rule=%s normalised=%s", pod.namespace, pod.name, rule,
                    ", ".join(f"{n}:{s:.1f}" for n, s in list(zip(names, column))[:_LOG_NODES]),
                )
        for rule, scores in d.shadow_scores.items():
            changed = [n for n, a, b in zip(names, d.scores, scores) if a != b]
            shadow_best = scores.index(max(scores)) if scores else None
            log.info(
                "shadow priority=%s pod=%s/%s would change %d/%d score(s); best would be %s",
                rule, pod.namespace, pod.name, len(changed), len(names),
                f"{names[shadow_best]}:{scores[shadow_best]}" if shadow_best is not None else "-",
            )
        self._log_failures("prioritize", pod, d.failures)

    def _log_preempt(self, pod: PodView, count: int, d: PreemptDecision, fetched: int, started: float) -> None:
        action = "kept" if self.options.preempt_unknown_nodes == "keep" else "dropped"
        log.info(
            "preempt pod=%s/%s candidates=%d kept=%d dropped=%d rejected=%d no_victims=%d unknown=%d (%s) "
            "fetched=%d took=%s",
            pod.namespace, pod.name, count, len(d.kept), count - len(d.kept), len(d.rejected),
            len(d.without_victims), len(d.unknown), action, fetched, self._elapsed(started),
        )
        if d.unknown:
            log.warning(
                "preempt pod=%s/%s %s %d candidate(s) the extender knows nothing about "
                "(--preempt-unknown-nodes %s): %s; %s",
                pod.namespace, pod.name, action, len(d.unknown), self.options.preempt_unknown_nodes,
                _names(list(d.unknown)), self.candidates.unknown_hint(),
            )
        if d.dropped and log.isEnabledFor(logging.DEBUG):
            log.debug("preempt pod=%s/%s dropped: %s", pod.namespace, pod.name, _names(d.dropped))
        self._log_failures("preempt", pod, d.failures)
