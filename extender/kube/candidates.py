"""Where preempt finds the Node objects of its candidates, and what it says when it cannot.

kube-scheduler's preempt requests name candidate nodes but carry no Node objects (full-node
mode sends victim pods, names mode victim UIDs). The views come, in this order, from:

1. the node cache (``--node-cache``): complete and current once listed;
2. the nodes seen in this worker's full-node filter and prioritize requests (recorded only
   without a node cache), the newest resourceVersion of each, bounded;
3. the API server, ``GET /api/v1/nodes/{name}`` (``--preempt-node-lookup``), within a
   deadline; what it returns joins the seen nodes.

A candidate none of them has is unknown: the engine keeps or drops it as configured. With
the lookup, a seen view older than ``REFRESH_AFTER`` is fetched again (the node may have been
labelled for maintenance since it filled up and left the filter requests); the old view is
used only if that fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from extender.engine import Policy, UnknownCandidates
from extender.kube.seen import SeenNodes
from extender.view import NodeView

#: seconds after which a view seen in a request is fetched again when the lookup is on
REFRESH_AFTER = 60.0


class NodeCache(Protocol):
    """The node watch cache (:class:`~extender.kube.stores.NodeStore`)."""

    def get_many(self, names: Sequence[str]) -> list[NodeView | None]: ...


class NodeFetcher(Protocol):
    """Fetches nodes by name from the API server within a deadline; omits those it could not get."""

    def fetch(self, names: Sequence[str]) -> Mapping[str, NodeView]: ...


class CandidateNodes:
    """The lookup chain above, for one worker. Thread-safe as its parts are."""

    def __init__(
        self, cache: NodeCache | None = None, seen: SeenNodes | None = None, fetcher: NodeFetcher | None = None
    ) -> None:
        self.cache = cache
        self.seen = seen
        self.fetcher = fetcher

    def remember(self, views: Sequence[NodeView]) -> None:
        """Views a full-node request carried (already decoded: recording costs ~0.15 ms per
        1000 nodes). Ignored with a node cache, which is complete and fresher."""
        if self.seen is not None and self.cache is None:
            self.seen.record(views)

    def resolve(self, names: Sequence[str]) -> tuple[list[NodeView | None], int]:
        """Each named node's view (None: unknown), and how many came from the API server."""
        found: list[NodeView | None] = self.cache.get_many(names) if self.cache is not None else [None] * len(names)
        cached = [view is not None for view in found]
        if self.seen is not None and None in found:
            seen = self.seen
            found = [view if view is not None else seen.get(name) for name, view in zip(names, found)]
        if self.fetcher is None:
            return found, 0
        stale = self.seen.age if self.seen is not None else (lambda name: float("inf"))
        wanted = [
            name for name, view, in_cache in zip(names, found, cached)
            if view is None or (not in_cache and stale(name) > REFRESH_AFTER)
        ]
        if not wanted:
            return found, 0
        got = self.fetcher.fetch(wanted)
        if not got:
            return found, 0
        if self.seen is not None:
            self.seen.record(got.values())
        return [got.get(name, view) for name, view in zip(names, found)], len(got)

    def unknown_hint(self) -> str:
        """Why a candidate was unknown, and what would help, for the preempt log line."""
        if self.cache is not None:
            return "they are not in the node cache (not listed or watched yet)"
        if self.fetcher is not None:
            return "they were not seen in a filter/prioritize request and the API lookup could not fetch them"
        return (
            "they were not seen in a filter/prioritize request of this worker; with --node-cache "
            "(names mode) or --preempt-node-lookup every candidate can be checked"
        )


def startup_warning(
    policy: Policy, *, node_cache: bool, node_lookup: bool, seen_nodes: int, unknown: UnknownCandidates
) -> str | None:
    """What to warn about once at start-up when preempt can only guess, or None if it need not.

    Without a node cache and without the API lookup, candidates are checked only against
    nodes seen in earlier requests, and a fresh worker has seen none: in a cluster whose
    nodes are all full, no filter request carries them before the first preemption.
    """
    if node_cache or node_lookup or not any(not rule.shadow for rule in policy.predicates):
        return None
    consequence = (
        "kept: kube-scheduler may then evict its pods although the policy rejects the node"
        if unknown == "keep"
        else "dropped: no preemption on it until the extender has seen the node"
    )
    checked = (
        f"each candidate is checked against the newest Node object this worker has seen in a filter "
        f"or prioritize request (up to {seen_nodes} nodes, --preempt-seen-nodes); a candidate it has "
        "not seen is"
        if seen_nodes > 0
        else "no candidate can be checked (--preempt-seen-nodes 0): every one is"
    )
    return (
        "preempt can only guess: without --node-cache, kube-scheduler's preempt requests carry no "
        f"Node objects, so {checked} {consequence} (--preempt-unknown-nodes {unknown}). Run with "
        "--node-cache (names mode) or --preempt-node-lookup (RBAC: get on nodes) to check every candidate"
    )
