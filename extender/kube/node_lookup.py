"""Fetching the preempt candidates the extender knows nothing about from the API server.

kube-scheduler waits for the preempt reply (``httpTimeout``, 5 s by default), so a lookup is
bounded twice: at most ``concurrency`` GETs in flight, and the whole lookup returns within
``timeout`` seconds whatever the API server does. A node that cannot be fetched (403: no RBAC,
404: deleted since the scheduler's snapshot, a timeout, a server error) is simply not
returned: preempt treats it as unknown. Each such failure is logged once, not per call: a
missing RBAC rule would otherwise log on every preemption.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from urllib.parse import quote

from extender.codec import objects
from extender.codec.common import WireError
from extender.kube.client import KubeClient
from extender.kube.errors import ApiError, Forbidden, NotFound, TransportError
from extender.view import NodeView

log = logging.getLogger("extender.kube")

#: GETs in flight at once: below requests' default pool of 10 connections per host, and
#: a few hundred candidates (kube-scheduler proposes up to max(10% of nodes, 100)) still
#: fit in a second at the API server's usual few milliseconds per GET
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 1.0
#: distinct failures remembered as already logged, before the memory is reset
_REPORTED_LIMIT = 10000


class NodeLookup:
    """``GET /api/v1/nodes/{name}`` for a batch of names, concurrently, within a deadline.

    Thread-safe; owns a small thread pool (call :meth:`close` when done). The pool's threads
    share the client's Session: urllib3's connection pool is thread-safe, and ``concurrency``
    stays below its size, so no connection is opened and thrown away per GET.
    """

    def __init__(
        self, client: KubeClient, *, timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        if timeout <= 0 or concurrency < 1:
            raise ValueError("timeout must be > 0 and concurrency >= 1")
        self.client = client
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="node-lookup")
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def fetch(self, names: Sequence[str]) -> dict[str, NodeView]:
        """The views of the nodes among ``names`` the API server returned within the deadline."""
        if not names:
            return {}
        deadline = time.monotonic() + self.timeout
        try:
            futures: dict[Future[NodeView], str] = {
                self._pool.submit(self._get, name, deadline): name for name in dict.fromkeys(names)
            }
        except RuntimeError:  # closed: the worker is shutting down; its last calls find nothing
            return {}
        done, late = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future in late:
            # Not started yet: never start it. In flight: its own timeout is the deadline too.
            future.cancel()
            self._report("timeout", futures[future], f"no answer within {self.timeout:g}s")
        found: dict[str, NodeView] = {}
        for future in done:
            name = futures[future]
            error = future.exception()
            if error is None:
                found[name] = future.result()
            else:
                self._report_error(name, error)
        return found

    def _get(self, name: str, deadline: float) -> NodeView:
        response = self.client.request("GET", f"/api/v1/nodes/{quote(name, safe='')}", deadline=deadline)
        return objects.decode_node(response.content, f"node {name}", compact=True)

    def _report_error(self, name: str, error: BaseException) -> None:
        if isinstance(error, Forbidden):
            # One line per process: every node fails alike until the RBAC rule exists.
            self._report(
                "forbidden", "", f"{error.message}: grant get on nodes (deploy/components/preempt-node-lookup)"
            )
        elif isinstance(error, NotFound):
            self._report("not found", name, "the node was deleted")
        elif isinstance(error, TransportError):
            self._report("timeout", name, error.message)
        elif isinstance(error, (ApiError, WireError)):
            self._report("error", name, str(error))
        else:  # a bug: say so loudly, but preempt must still answer
            log.error("preempt node lookup of %s raised", name, exc_info=error)

    def _report(self, kind: str, name: str, detail: str) -> None:
        with self._lock:
            if (kind, name) in self._reported:
                return
            if len(self._reported) >= _REPORTED_LIMIT:
                self._reported.clear()
            self._reported.add((kind, name))
        log.warning(
            "preempt node lookup%s failed (%s): %s; such candidates count as unknown (logged once)",
            f" of {name}" if name else "", kind, detail,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
