"""The extender verbs: decode a request, ask the engine, encode the reply, record the decision.

Sits between the HTTP layer (which only moves bytes and status codes) and the engine
(which only sees views). Bad input raises :class:`~extender.codec.common.WireError`; every
protocol-level outcome is a reply body kube-scheduler accepts (HTTP 200).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from extender.codec import kube_scheduler as wire
from extender.codec import kube_scheduler_replies as replies
from extender.codec.common import Body
from extender.decisions import DecisionLog, DecisionLogOptions, Observer, Record
from extender.decisions import record as records
from extender.decisions.log import Capture, Emitter, summarise_names, warn_failures
from extender.decisions.table import filter_table, prioritize_table
from extender.engine import Engine, FilterDecision, Policy, ScoreDecision, UnknownCandidates
from extender.engine.outcomes import normalised_at
from extender.kube.binder import BindError
from extender.kube.binds import PodRequests
from extender.kube.candidates import CandidateNodes, NodeFetcher
from extender.k8s.timefmt import utc_now
from extender.kube.seen import SeenNodes
from extender.measured import NO_LOAD, LoadView
from extender.sdk.rules import Context
from extender.telemetry import metrics
from extender.view import NodeView, PodView

log = logging.getLogger("extender.decisions")

UnknownNodes = Literal["fail", "pass"]
UNKNOWN_NODE_REASON = "node(s) unknown to the extender (not in its node cache)"
NO_CACHE_REASON = "node(s) unknown to the extender (it runs without a node cache)"
NOT_SYNCED_ERROR = "the extender's node cache has not completed its first list yet; retry shortly"
#: what POST /explain and ``extender explain`` explain: one verb, or filter then prioritize
ExplainVerb = Literal["filter", "prioritize", "both"]


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

    def unsubscribe(self, listener: Callable[[str | None], None]) -> None:
        """Stop telling ``listener`` (a replaced service's engine)."""


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
        clock: Callable[[], datetime] = utc_now,
        load: LoadView = NO_LOAD,
        pod_requests: PodRequests | None = None,
        decision_log: DecisionLogOptions = DecisionLogOptions(),
        observers: Sequence[Observer] = (),
    ) -> None:
        self.policy = policy
        #: what rules read through ``ctx.load`` (extender.load.view.ClusterLoad when running)
        self.load = load
        self.engine = Engine(policy, rule_seconds=metrics.observe_rule_seconds)
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
        #: each call's decision record: logged as configured, handed to ``observers`` (callables
        #: taking the record dict, called after the reply is computed; one that raises is
        #: logged once and never fails the call)
        self.decisions = DecisionLog(decision_log, observers)

    def close(self) -> None:
        """A policy reload replaced this service: stop following the node cache, so its
        engine's verdicts go with it (calls still in flight finish on it)."""
        if self.nodes is not None:
            self.nodes.unsubscribe(self.engine.forget_node)

    def _context(self, pod: PodView) -> Context:
        if self.pod_requests is not None:
            self.pod_requests.remember(pod.uid, pod.requests)
        return Context(now=self.clock(), load=self.load)

    def _views(self, names: Sequence[str]) -> Sequence[NodeView | None]:
        return self.nodes.get_many(names) if self.nodes is not None else [None] * len(names)

    def _base(self, verb: str, pod: PodView, ctx: Context, mode: str, count: int, outcome: str, started: float) -> Record:
        return records.base(verb, pod, ctx.now, mode, self.policy.digest, count, outcome, started)

    @staticmethod
    def _without_cache(names: Sequence[str]) -> tuple[list[NodeView], list[int], list[str]]:
        """No node cache: no views, every name unknown (a names-mode request the extender
        cannot evaluate; see ``unknown_nodes``)."""
        return [], [], list(names)

    # -- filter -------------------------------------------------------------------------

    def filter(self, body: Body) -> bytes:
        """Answer ``ExtenderArgs`` with ``ExtenderFilterResult``."""
        return self._filter(body, self.decisions)

    def _filter(self, body: Body, out: Emitter) -> bytes:
        started = time.perf_counter()
        args = wire.decode_extender_args(body)
        pod = args.pod
        ctx = self._context(pod)
        if args.node_items is not None:
            items = args.node_items
            if not self.engine.in_scope(pod):
                out.emit(lambda: self._base("filter", pod, ctx, "nodes", len(items), "out-of-scope", started))
                return replies.encode_filter_reply(node_items=items)
            views = wire.decode_node_views(body, args)
            decision = self.engine.filter(pod, views, ctx)
            self.candidates.remember(views)
            reply = replies.encode_filter_reply(
                node_items=[items[i] for i in decision.passed],
                failed=decision.failed,
                unresolvable=decision.unresolvable,
            )
            self._filtered(out, pod, ctx, "nodes", len(items), lambda: [v.name for v in views], lambda: views, decision, [], started)
            return reply
        names = args.node_names or []
        if not self.engine.in_scope(pod):
            out.emit(lambda: self._base("filter", pod, ctx, "names", len(names), "out-of-scope", started))
            return replies.encode_filter_reply(node_names=names)
        if self.nodes is not None and not self.nodes.ready:
            # An error makes kube-scheduler retry the pod after a backoff; rejecting every
            # node as unknown would record a misleading FailedScheduling reason instead.
            # (A cache that synced and then lost the API server keeps answering below, from
            # its last state; readiness takes the replica out of the Service meanwhile.)
            out.emit(
                lambda: {**self._base("filter", pod, ctx, "names", len(names), "error", started), "error": NOT_SYNCED_ERROR},
                always=True,
            )
            return replies.encode_filter_reply(error=NOT_SYNCED_ERROR)
        if self.nodes is not None:
            decision, positions, unknown = self.engine.filter_named(pod, names, self.nodes, ctx)
        else:
            views, positions, unknown = self._without_cache(names)
            decision = self.engine.filter(pod, views, ctx, memoize=True)
        if unknown:
            decision = self._with_unknown(names, positions, unknown, decision)
        reply = replies.encode_filter_reply(
            node_names=names if len(decision.passed) == len(names) else [names[i] for i in decision.passed],
            failed=decision.failed,
            unresolvable=decision.unresolvable,
        )
        self._filtered(out, pod, ctx, "names", len(names), lambda: names, lambda: self._views(names), decision, unknown, started)
        return reply

    def _filtered(  # noqa: PLR0913 - the call's facts, passed on to the record and its table
        self, out: Emitter, pod: PodView, ctx: Context, mode: str, count: int, names: Callable[[], Sequence[str]],
        views: Callable[[], Sequence[NodeView | None]], d: FilterDecision, unknown: Sequence[str], started: float,
    ) -> None:
        out.emit(
            lambda: records.filter_fields(
                self._base("filter", pod, ctx, mode, count, "answered", started), d, unknown, self._unknown_reason, out.max_nodes
            ),
            always=bool(d.failures),
            table=lambda: filter_table(self.policy, pod, ctx, names(), views(), d.passed, d.failed, out.max_nodes),
        )
        warn_failures("filter", pod, d.failures)

    def _with_unknown(
        self, names: Sequence[str], positions: Sequence[int], unknown: Sequence[str], decision: FilterDecision
    ) -> FilterDecision:
        """The decision on the known nodes, extended to names the cache does not know."""
        passed = [positions[i] for i in decision.passed]
        unresolvable = dict(decision.unresolvable)
        reason = self._unknown_reason
        if reason is None:
            unknown_names = set(unknown)
            passed = sorted([*passed, *(i for i, name in enumerate(names) if name in unknown_names)])
        else:
            unresolvable.update((name, reason) for name in unknown)
        return replace(decision, passed=passed, unresolvable=unresolvable)

    @property
    def _unknown_reason(self) -> str | None:
        """Why a name the cache does not know is rejected; None: it passes (unknown_nodes)."""
        if self.options.unknown_nodes == "pass":
            return None
        return UNKNOWN_NODE_REASON if self.nodes is not None else NO_CACHE_REASON

    # -- prioritize ---------------------------------------------------------------------

    def prioritize(self, body: Body) -> bytes:
        """Answer ``ExtenderArgs`` with a ``HostPriorityList`` (bare array, ints 0..10)."""
        return self._prioritize(body, self.decisions)

    def _prioritize(self, body: Body, out: Emitter) -> bytes:
        started = time.perf_counter()
        args = wire.decode_scoring_args(body)
        pod = args.pod
        ctx = self._context(pod)
        mode = "nodes" if args.nodes is not None else "names"
        full = args.nodes
        names = [v.name for v in full] if full is not None else list(args.node_names or [])
        if not self.engine.in_scope(pod):
            out.emit(lambda: self._base("prioritize", pod, ctx, mode, len(names), "out-of-scope", started))
            return replies.encode_host_priorities((n, 0) for n in names)
        positions: Sequence[int] = range(len(names))
        unknown: list[str] = []
        if full is not None:
            decision = self.engine.prioritize(pod, full, ctx)
            self.candidates.remember(full)
        elif self.nodes is not None:
            decision, positions, unknown = self.engine.prioritize_named(pod, names, self.nodes, ctx)
        else:
            views, positions, unknown = self._without_cache(names)
            decision = self.engine.prioritize(pod, views, ctx, memoize=True)
        scores, shadow = decision.scores, decision.shadow_scores
        if unknown:  # unknown nodes get the lowest score

            def expand(known: Sequence[int]) -> list[int]:
                every = [0] * len(names)
                for index, score in zip(positions, known):
                    every[index] = score
                return every

            scores, shadow = expand(scores), {rule: expand(column) for rule, column in shadow.items()}
        reply = replies.encode_host_priorities(zip(names, scores))
        self._prioritized(out, pod, ctx, mode, names, full, decision, scores, shadow, positions, len(unknown), started)
        return reply

    def _prioritized(  # noqa: PLR0913 - the call's facts, passed on to the record and its table
        self, out: Emitter, pod: PodView, ctx: Context, mode: str, names: Sequence[str],
        full: Sequence[NodeView] | None, d: ScoreDecision, scores: Sequence[int], shadow: Mapping[str, Sequence[int]],
        positions: Sequence[int], unknown: int, started: float,
    ) -> None:
        def best_rules(best: int) -> dict[str, float]:
            known = best if not unknown else (positions.index(best) if best in positions else -1)
            return normalised_at(self.policy.priorities, d.raw, known, d.bounds) if known >= 0 else {}

        out.emit(
            lambda: records.prioritize_fields(
                self._base("prioritize", pod, ctx, mode, len(names), "answered", started),
                names, scores, best_rules, shadow, unknown, d.failures,
            ),
            always=bool(d.failures),
            table=lambda: prioritize_table(
                self.policy, pod, ctx, names, full if full is not None else self._views(names), scores, out.max_nodes
            ),
        )
        warn_failures("prioritize", pod, d.failures)

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

        ctx = self._context(args.pod)
        d = self.engine.preempt(
            args.pod,
            args.candidates,
            resolve,
            ctx,
            unknown=self.options.preempt_unknown_nodes,
            memoize=True,  # every source's views are long-lived objects a verdict can be kept on
        )
        reply = replies.encode_preempt_reply(d.kept)
        mode = "names" if args.meta else "nodes"
        outcome = "answered" if d.in_scope else "out-of-scope"
        self.decisions.emit(
            lambda: records.preempt_fields(
                self._base("preempt", args.pod, ctx, mode, len(args.candidates), outcome, started),
                d, fetched, self.decisions.max_nodes,
            ),
            always=bool(d.failures),
        )
        if d.unknown:
            action = "kept" if self.options.preempt_unknown_nodes == "keep" else "dropped"
            log.warning(
                "preempt pod=%s/%s %s %d candidate(s) the extender knows nothing about "
                "(--preempt-unknown-nodes %s): %s; %s",
                args.pod.namespace, args.pod.name, action, len(d.unknown), self.options.preempt_unknown_nodes,
                summarise_names(d.unknown), self.candidates.unknown_hint(),
            )
        warn_failures("preempt", args.pod, d.failures)
        return reply

    # -- bind ---------------------------------------------------------------------------

    def bind(self, body: Body) -> bytes:
        """Answer ``ExtenderBindingArgs`` with ``ExtenderBindingResult``."""
        started, now = time.perf_counter(), self.clock()  # the record's time: when the call started
        args = wire.decode_binding_args(body)
        error = self._bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
        pod = PodView(args.pod_name, args.pod_namespace, uid=args.pod_uid)
        self.decisions.emit(
            lambda: {
                **records.base(
                    "bind", pod, now, "names", self.policy.digest, 1, "error" if error else "answered", started
                ),
                "node": args.node,
                "error": error,
            },
            always=bool(error),
        )
        return replies.encode_bind_reply(error)

    def _bind(self, namespace: str, name: str, uid: str, node: str) -> str:
        """The bind's error ("" when bound)."""
        where = f"pod={namespace}/{name} node={node}"
        if not self.policy.bind_enabled:
            log.warning("bind refused, not enabled in the policy: %s", where)
            metrics.bind_answered("not-enabled")
            return (
                "bind is not configured on this extender (set bind.enabled: true in the policy), "
                "or remove bindVerb from the KubeSchedulerConfiguration"
            )
        if self.binder is None:
            log.error("bind enabled but no Kubernetes API client is configured: %s", where)
            metrics.bind_answered("no-api-access")
            return "bind is enabled in the policy but the extender has no Kubernetes API access configured"
        try:
            self.binder.bind(namespace, name, uid, node)
        except BindError as exc:
            log.warning("bind failed: %s: %s", where, exc)
            metrics.bind_answered("failed")
            return str(exc)
        metrics.bind_answered("bound")
        return ""

    # -- explain ------------------------------------------------------------------------

    def explain(self, body: Body, verb: ExplainVerb = "both", max_nodes: int = 0) -> Record:
        """The decision record, with its table, of filter or prioritize on ``body`` (an
        ``ExtenderArgs``), computed as the verb computes it but neither logged nor observed;
        ``both``: ``{"filter": record, "prioritize": record of the nodes filter passed,
        "winner": name or None}``. ``max_nodes`` bounds the table rows (0: every node)."""
        if verb != "both":
            capture = Capture(max_nodes)
            (self._filter if verb == "filter" else self._prioritize)(body, capture)
            return capture.record
        filtered = Capture(max_nodes)
        reply = json.loads(self._filter(body, filtered))
        if reply.get("Error"):
            return {"filter": filtered.record, "prioritize": None, "winner": None}
        request = json.loads(bytes(body))
        passed = {"Pod": request["Pod"], "Nodes": reply["Nodes"], "NodeNames": reply["NodeNames"]}
        scored = Capture(max_nodes)
        self._prioritize(json.dumps(passed).encode(), scored)
        best = scored.record.get("best")
        return {"filter": filtered.record, "prioritize": scored.record, "winner": best["node"] if best else None}
