"""Reflector: keep a local copy of one Kubernetes resource, like client-go's reflector.

List (paginated) -> watch from the list's resourceVersion with bookmarks -> apply ADDED,
MODIFIED, DELETED; BOOKMARKs only advance the resourceVersion. When a watch ends (the
server's timeoutSeconds) it resumes from the last resourceVersion seen; a 410 (expired
resourceVersion or continue token) relists; errors and dropped connections reconnect with
backoff; a periodic relist heals anything missed. A relist replaces the whole store, so
objects deleted while disconnected disappear.

The status says since when the reflector has been without the API server: from the moment
a watch stream or a list ends (cleanly or not) or a call fails, until a list page arrives or
the next watch stream opens. A routine watch renewal is a gap of milliseconds; an outage grows it,
and readiness (:meth:`extender.kube.cluster.ClusterState.readiness`) reads it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from msgspec import Raw

import requests

from extender.kube.client import Backoff, KubeClient, Params, interrupt
from extender.kube.errors import ApiError, Forbidden, Gone, Unauthorized
from extender.telemetry import metrics

log = logging.getLogger("extender.kube")

T = TypeVar("T")


class Store(Protocol[T]):
    """Where a reflector puts what it decodes. Only the reflector's thread writes."""

    def replace(self, items: dict[str, T]) -> None: ...

    def upsert(self, key: str, item: T) -> None: ...

    def delete(self, key: str) -> None: ...

    def __len__(self) -> int: ...


#: decode one object: its key and what to keep (None: do not keep, e.g. an unbound pod)
Decoder = Callable[[Raw], tuple[str, T | None]]


@dataclass
class ReflectorStatus:
    """What /healthz and /readyz report about one reflector."""

    synced: bool = False
    resource_version: str = ""
    items: int = 0
    lists: int = 0
    events: int = 0
    #: time.monotonic() of the last successful list or event/bookmark (None: never)
    last_update: float | None = None
    #: the error that ended the last connection, until the next one succeeds
    last_error: str = ""
    #: time.monotonic() since which no watch stream has been open and no list page arrived
    #: (None: connected). A reflector starts disconnected.
    disconnected_since: float | None = None


class Reflector(Generic[T]):
    """Mirrors ``path`` into ``store`` from a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        client: KubeClient,
        path: str,
        *,
        store: Store[T],
        decode: Decoder[T],
        params: Params | None = None,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
        resync_period: float = 1800.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_list: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.on_list = on_list
        self.client = client
        self.path = path
        self.store = store
        self.decode = decode
        self.params = params or {}
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.resync_period = resync_period
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.clock = clock
        self.status = ReflectorStatus(disconnected_since=clock())
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0
        self._next_relist = 0.0
        self._stream: requests.Response | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            metrics.cache_connected(self.name, False)  # until the first list page arrives
            self._thread = threading.Thread(target=self.run, name=f"reflector-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            interrupt(stream)  # the watch thread is blocked reading it
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def disconnected_for(self) -> float | None:
        """Seconds without a working connection to the API server (None: connected now)."""
        since = self.status.disconnected_since
        return None if since is None else max(0.0, self.clock() - since)

    def _contact(self) -> None:
        """The API server answered: a list page, an open watch stream, an event."""
        if self.status.disconnected_since is None:
            return
        if self.status.last_error and self.synced.is_set():
            log.info("%s: connected to the API server again after %.1fs", self.name, self.disconnected_for() or 0.0)
        self.status.disconnected_since = None
        self.status.last_error = ""
        metrics.cache_connected(self.name, True)

    def _lost(self) -> None:
        """The current connection ended (a watch renewal, an error, a relist): start the clock."""
        if self.status.disconnected_since is None:
            self.status.disconnected_since = self.clock()
            metrics.cache_connected(self.name, False)

    def _explain(self, exc: Exception) -> str:
        """What an error means for this cache, in words an operator can act on."""
        resource = self.path.rsplit("/", 1)[-1]
        if isinstance(exc, Unauthorized):
            return (
                f"the API server rejected the extender's credentials ({exc.message}): the token or client "
                f"certificate is invalid, expired or revoked; the {resource} cache keeps its last state"
            )
        if isinstance(exc, Forbidden):
            return (
                f"forbidden by RBAC ({exc.message}): the extender's identity needs list and watch on {resource}; "
                f"the {resource} cache keeps its last state"
            )
        return str(exc)

    def run(self) -> None:
        """List and watch until stopped."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list or self.clock() >= self._next_relist:
                    self.list()
                    need_list = False
                started, events = self.clock(), self.status.events
                self.watch()
                if self.status.events > events or self.clock() - started > 1.0:
                    self.backoff.reset()
                else:  # a watch that ends at once with nothing in it: do not spin on it
                    self._stop.wait(self.backoff.next())
            except Gone as exc:
                log.info("%s: %s; relisting", self.name, exc)
                need_list = True
            except Exception as exc:  # API errors, dropped streams, malformed events: reconnect
                self._lost()
                self.status.last_error = str(exc)
                metrics.cache_watch_error(self.name)
                delay = self.backoff.next()
                # 401/403 do not heal by retrying: someone has to fix the credentials or RBAC.
                level = logging.ERROR if isinstance(exc, (Unauthorized, Forbidden)) else logging.WARNING
                log.log(level, "%s: %s; retrying in %.1fs", self.name, self._explain(exc), delay)
                if not isinstance(exc, ApiError):
                    need_list = True  # we may have lost an event mid-stream: resync
                self._stop.wait(delay)

    # -- one list, one watch --------------------------------------------------------------

    def list(self) -> None:
        """Replace the store with a fresh paginated list."""
        items: dict[str, T] = {}
        resource_version = ""
        for page in self.client.list_pages(self.path, params=self.params, limit=self.page_size):
            self._contact()
            resource_version = page.resource_version
            for raw in page.items:
                key, item = self.decode(raw)
                if item is not None:
                    items[key] = item
        self.store.replace(items)
        self._count = len(items)
        self.status.resource_version = resource_version
        self.status.items = self._count
        self.status.lists += 1
        self.status.last_update = self.clock()
        metrics.cache_listed(self.name, self._count, time.time(), relist=self.status.lists > 1)
        self._next_relist = self.clock() + self.resync_period
        if not self.synced.is_set():
            log.info("%s: synced %d item(s) at resourceVersion %s", self.name, self._count, resource_version)
        self.status.synced = True
        self.synced.set()
        # Connected again only once the watch stream opens: a watch request that hangs after
        # a good list must count, or a stuck reflector would look connected for minutes.
        self._lost()
        self.on_list()

    def watch(self) -> None:
        """Follow one watch stream until the server ends it (or it is time to relist)."""
        timeout = random.randint(*self.watch_timeout)
        events = self.client.watch(
            self.path,
            resource_version=self.status.resource_version,
            timeout_seconds=timeout,
            params=self.params,
            on_open=self._opened,
        )
        try:
            for event in events:
                self._contact()
                if event.type != "BOOKMARK":
                    self._apply(event.type, event.object)
                if event.resource_version:
                    self.status.resource_version = event.resource_version
                self.status.events += 1
                self.status.last_update = self.clock()
                metrics.cache_event(self.name, self.status.items, time.time())
                if self._stop.is_set() or self.clock() >= self._next_relist:
                    return
        finally:
            self._stream = None
            self._lost()
            events.close()

    def _opened(self, response: requests.Response) -> None:
        self._stream = response
        self._contact()
        if self._stop.is_set():  # stop() ran between the request and now
            interrupt(response)

    def _apply(self, kind: str, raw: Raw) -> None:
        key, item = self.decode(raw)
        if kind == "DELETED" or item is None:
            self.store.delete(key)
        elif kind in ("ADDED", "MODIFIED"):
            self.store.upsert(key, item)
        self.status.items = len(self.store)
