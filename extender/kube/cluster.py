"""The cluster-state layer the service reads: node cache, optional pod cache, bind history, binder."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

from extender.kube.binder import KubeBinder
from extender.kube.binds import DEFAULT_RETENTION, BindHistory
from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig
from extender.kube.node_lookup import NodeLookup
from extender.kube.reflector import Reflector
from extender.kube.stores import NodeStore, RecentPodStore

#: bound pods that still hold resources on their node
BOUND_POD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


@dataclass(frozen=True)
class ClusterOptions:
    nodes: bool = True
    pods: bool = False
    bind: bool = False
    api_timeout: float = 10.0
    bind_timeout: float = 3.0
    resync_period: float = 1800.0
    page_size: int = 500
    #: preempt's GET of candidate nodes known nowhere else, and its deadline per call
    node_lookup: bool = False
    node_lookup_timeout: float = 1.0
    #: seconds a synced cache may be without the API server before the replica reports not
    #: ready (settings.Settings.cache_stale_seconds says why 60)
    stale_after: float = 60.0
    #: seconds of binds kept for in-flight accounting (extender.kube.binds says why 15 min)
    bind_retention: float = DEFAULT_RETENTION


class ClusterState:
    """Owns the API clients and reflectors of one worker process.

    Each cache gets its own client (its own connection): a long watch must not queue a bind
    behind it. Start it in the process that serves (after gunicorn forks), not before.
    """

    def __init__(self, config: ClusterConfig, options: ClusterOptions = ClusterOptions()) -> None:
        self.config = config
        self.options = options
        self.reflectors: list[Reflector[Any]] = []
        self.nodes: NodeStore | None = None
        self.pods: RecentPodStore | None = None
        self.binder: KubeBinder | None = None
        #: pods bound per node recently, for in-flight accounting: fed by the pod cache
        #: (every replica's binds) and by the binder (this replica's, at once); None when
        #: neither runs
        self.binds: BindHistory | None = None
        if options.pods or options.bind:
            self.binds = BindHistory(retention=options.bind_retention)
        if options.nodes:
            nodes_reflector: Reflector[Any]
            self.nodes = NodeStore(is_synced=lambda: nodes_reflector.synced.is_set())
            nodes_reflector = self._reflector("nodes", "/api/v1/nodes", self.nodes, NodeStore.decode)
        if options.pods:
            assert self.binds is not None
            self.pods = RecentPodStore(self.binds)
            self._reflector(
                "pods", "/api/v1/pods", self.pods, self.pods.decode, params={"fieldSelector": BOUND_POD_SELECTOR}
            )
        if options.bind:
            self.binder = KubeBinder(self._client(), timeout=options.bind_timeout, placements=self.binds)
        self.node_lookup: NodeLookup | None = None
        if options.node_lookup:
            self.node_lookup = NodeLookup(self._client(), timeout=options.node_lookup_timeout)

    def _client(self) -> KubeClient:
        return KubeClient(self.config, timeout=self.options.api_timeout)

    def _reflector(self, name: str, path: str, store: Any, decode: Any, params: dict[str, str] | None = None) -> Reflector[Any]:
        reflector: Reflector[Any] = Reflector(
            name,
            self._client(),
            path,
            store=store,
            decode=decode,
            params=params,
            page_size=self.options.page_size,
            resync_period=self.options.resync_period,
            # A fresh list is thousands of long-lived objects: keep the cyclic GC from
            # rescanning them on the request path (they hold no reference cycles).
            on_list=gc.freeze,
        )
        self.reflectors.append(reflector)
        return reflector

    def start(self) -> None:
        for reflector in self.reflectors:
            reflector.start()

    def stop(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()
        if self.node_lookup is not None:
            self.node_lookup.close()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(r.synced.wait(max(0.0, deadline - time.monotonic())) for r in self.reflectors)

    def readiness(self) -> tuple[bool, str]:
        """Ready while every cache has completed its first list and none has been without the
        API server for ``stale_after`` seconds or more.

        A cache within the bound still answers (a watch renewal, a reconnect, an API server
        restarting behind a load balancer): the detail says it is disconnected. Past the
        bound the replica is blind to node changes, and traffic should go to replicas that
        are not; if every replica is cut off, none is ready, and the requests that still
        reach one are answered from its last state (better than failing every pod).
        """
        unsynced = [r for r in self.reflectors if not r.synced.is_set()]
        if unsynced:
            detail = f"waiting for the first list of: {', '.join(r.name for r in unsynced)}"
            errors = [f"{r.name}: {r.status.last_error}" for r in unsynced if r.status.last_error]
            return False, detail + (f" (last error: {'; '.join(errors)})" if errors else "")
        stale: list[str] = []
        reconnecting: list[str] = []
        for r in self.reflectors:
            seconds = r.disconnected_for()
            if seconds is None:
                continue
            error = f" (last error: {r.status.last_error})" if r.status.last_error else ""
            (stale if seconds >= self.options.stale_after else reconnecting).append(
                f"{r.name} without the API server for {seconds:.1f}s{error}"
            )
        if stale:
            limit = f"{self.options.stale_after:g}s (--cache-stale-seconds)"
            return False, f"cache stale: {'; '.join(stale)}; the limit is {limit}"
        if reconnecting:
            return True, f"caches synced, answering from the cache while reconnecting: {'; '.join(reconnecting)}"
        return True, "caches synced" if self.reflectors else "no caches"

    def health(self) -> dict[str, Any]:
        """Per-cache state for /healthz: synced, connected, size, resourceVersion, seconds since
        the last update and without the API server."""
        now = time.monotonic()
        report: dict[str, Any] = {}
        for r in self.reflectors:
            status = r.status
            disconnected = r.disconnected_for()
            report[r.name] = {
                "synced": status.synced,
                "connected": disconnected is None,
                "disconnectedSeconds": round(disconnected, 3) if disconnected is not None else None,
                "items": status.items,
                "resourceVersion": status.resource_version,
                "ageSeconds": round(now - status.last_update, 3) if status.last_update is not None else None,
                "lists": status.lists,
                "events": status.events,
                "lastError": status.last_error,
            }
        return report
