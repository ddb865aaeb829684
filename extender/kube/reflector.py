"""Reflector: keep a local copy of one Kubernetes resource, like client-go's reflector.

List (paginated) -> watch from the list's resourceVersion with bookmarks -> apply ADDED,
MODIFIED, DELETED; BOOKMARKs only advance the resourceVersion. When a watch ends (the
server's timeoutSeconds) it resumes from the last resourceVersion seen; a 410 (expired
resourceVersion or continue token) relists; errors and dropped connections reconnect with
backoff; a periodic relist heals anything missed. A relist replaces the whole store, so
objects deleted while disconnected disappear.
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
from extender.kube.errors import ApiError, Gone

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
    last_error: str = ""


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
        self.status = ReflectorStatus()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0
        self._next_relist = 0.0
        self._stream: requests.Response | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
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
                self.status.last_error = str(exc)
                delay = self.backoff.next()
                level = logging.ERROR if isinstance(exc, ApiError) and exc.status in (401, 403) else logging.WARNING
                log.log(level, "%s: %s; retrying in %.1fs", self.name, exc, delay)
                if not isinstance(exc, ApiError):
                    need_list = True  # we may have lost an event mid-stream: resync
                self._stop.wait(delay)

    # -- one list, one watch --------------------------------------------------------------

    def list(self) -> None:
        """Replace the store with a fresh paginated list."""
        items: dict[str, T] = {}
        resource_version = ""
        for page in self.client.list_pages(self.path, params=self.params, limit=self.page_size):
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
        self.status.last_error = ""
        self._next_relist = self.clock() + self.resync_period
        if not self.synced.is_set():
            log.info("%s: synced %d item(s) at resourceVersion %s", self.name, self._count, resource_version)
        self.status.synced = True
        self.synced.set()
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
                if event.type != "BOOKMARK":
                    self._apply(event.type, event.object)
                if event.resource_version:
                    self.status.resource_version = event.resource_version
                self.status.events += 1
                self.status.last_update = self.clock()
                if self._stop.is_set() or self.clock() >= self._next_relist:
                    return
        finally:
            self._stream = None
            events.close()

    def _opened(self, response: requests.Response) -> None:
        self._stream = response
        if self._stop.is_set():  # stop() ran between the request and now
            interrupt(response)

    def _apply(self, kind: str, raw: Raw) -> None:
        key, item = self.decode(raw)
        if kind == "DELETED" or item is None:
            self.store.delete(key)
        elif kind in ("ADDED", "MODIFIED"):
            self.store.upsert(key, item)
        self.status.items = len(self.store)
