"""A small Kubernetes API client on ``requests``: what the caches and the binder need, no more.

Every call has a timeout. Idempotent calls (and the binder's POST, which the API server
makes idempotent through its UID precondition) retry transport errors, 429 and 5xx with
exponential backoff and jitter, honouring Retry-After, within an optional deadline. A 401
makes the token source re-read its token once (service-account tokens rotate). Connections
use TCP keepalive, so a watch on a peer that went silent (a partition that drops packets)
fails within about a minute instead of at its read timeout.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from extender.codec import kube_api
from extender.kube.config import ClusterConfig
from extender.kube.errors import RETRYABLE, ApiError, ApiTimeout, Gone, TransportError, Unauthorized, error_for

log = logging.getLogger("extender.kube")

Params = Mapping[str, str | int]


class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**n))``."""

    def __init__(self, base: float = 0.2, cap: float = 30.0, rand: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.rand = base, cap, rand
        self.attempt = 0

    def next(self) -> float:
        delay: float = min(self.cap, self.base * 2**self.attempt) * self.rand()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


#: Probe a connection after 30 s of silence, every 10 s, and give up after 3 unanswered
#: probes: a dead peer is found in about a minute (client-go gets the same from HTTP/2 pings).
#: Without it, a watch whose packets vanish blocks until its read timeout, up to ten minutes,
#: while the cache looks connected.
KEEPALIVE_OPTIONS = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] + [
    (socket.IPPROTO_TCP, getattr(socket, name), value)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)  # Linux names; other systems keep their defaults
]


class _Adapter(HTTPAdapter):
    """TCP keepalive on every connection; optionally verify the server certificate against
    ``tls-server-name`` instead of the URL's host."""

    def __init__(self, server_name: str | None = None) -> None:
        self.server_name = server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options, *KEEPALIVE_OPTIONS]
        if self.server_name:
            kwargs["server_hostname"] = self.server_name
            kwargs["assert_hostname"] = self.server_name
        super().init_poolmanager(*args, **kwargs)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception under requests' and urllib3's wrappers (explicit causes only:
    what was being handled when urllib3 raised is not why it raised)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        inner = inner or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


def _transport_error(
    what: str, server: str, exc: requests.RequestException, timeout: float, *, streaming: bool = False
) -> TransportError:
    """A :class:`TransportError` that says in a few words why ``what`` got no (whole) answer.

    urllib3's own text runs to 300 characters of reprs ("HTTPConnectionPool(host=...): Max
    retries exceeded with url: ... (Caused by NewConnectionError(...))"); kube-scheduler
    shows a bind's error in the pod's events, and operators read it in /readyz.
    ``streaming``: the response had started (a watch), so the connection broke rather than
    failed to open.
    """
    root = _root_cause(exc)
    if isinstance(exc, requests.Timeout) or isinstance(root, (TimeoutError, urllib3.exceptions.TimeoutError)):
        detail = f"no {'data' if streaming else 'answer'} from {server} within {timeout:g}s"
        return ApiTimeout(f"{what}: {detail}", detail=detail)
    if isinstance(root, OSError) and root.strerror:
        reason = root.strerror
        if reason[:1].isupper() and reason[1:2].islower():  # "Connection refused" -> "connection refused"
            reason = reason[0].lower() + reason[1:]
    elif streaming:
        reason = "the server closed the connection mid-stream"
    else:
        reason = str(root) or type(root).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        reason = f"TLS: {reason}"
    detail = f"{'connection to ' + server + ' lost' if streaming else 'cannot reach ' + server}: {reason}"
    return TransportError(f"{what}: {detail}", detail=detail)


class KubeClient:
    """Talks to one API server. Thread-safe for the way the extender uses it (one Session
    per client; the caches and the binder each get their own client)."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        user_agent: str = "extender",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        self.session.verify = config.verify()
        if config.client_cert is not None:
            self.session.cert = config.client_cert
        self.session.mount("http://", _Adapter())
        self.session.mount("https://", _Adapter(config.tls_server_name))

    def close(self) -> None:
        self.session.close()

    # -- one call -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
        retry: bool | None = None,
        deadline: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Make one call; return the 2xx response or raise an :class:`ApiError` subclass.

        ``retry`` defaults to True for GET. ``deadline`` (time.monotonic) bounds the whole
        call, retries included: each attempt's timeout shrinks to what is left.
        """
        retry = method == "GET" if retry is None else retry
        backoff = Backoff()
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, path, params, body, self._timeout(timeout, deadline), stream)
            except Unauthorized:
                if refreshed_token or self.config.token_source is None:
                    raise
                refreshed_token = True  # the token may have rotated under us: re-read it once
                self.config.token_source.invalidate()
            except RETRYABLE as exc:
                if not retry or attempt > self.retries:
                    raise
                delay = max(exc.retry_after or 0.0, backoff.next())
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                log.info("%s %s failed (%s), retrying in %.2fs", method, path, exc, delay)
                self.sleep(delay)

    def _timeout(self, timeout: float | None, deadline: float | None) -> float:
        timeout = self.timeout if timeout is None else timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiTimeout("deadline exceeded before the call was made", detail="no time left for the call")
            timeout = min(timeout, left)
        return timeout

    def _attempt(
        self, method: str, path: str, params: Params | None, body: bytes | None, timeout: float, stream: bool
    ) -> requests.Response:
        headers = self.config.headers()
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.session.request(
                method,
                self.config.server + path,
                params=params,
                data=body,
                headers=headers,
                timeout=timeout,
                stream=stream,
                # Explicitly: requests would otherwise let REQUESTS_CA_BUNDLE override the
                # cluster's CA for this request.
                verify=self.session.verify,
            )
        except requests.RequestException as exc:
            raise _transport_error(f"{method} {path}", self.config.server, exc, timeout) from exc
        if response.status_code < 300:
            return response
        raise self._error(method, path, response)

    @staticmethod
    def _error(method: str, path: str, response: requests.Response) -> ApiError:
        body = response.content
        status = kube_api.decode_status(body)
        message = status.message if status and status.message else body.decode("utf-8", "replace").strip()[:300]
        retry_after = response.headers.get("Retry-After")
        return error_for(
            response.status_code,
            f"{method} {path}: {response.status_code} {message}",
            status.reason if status else "",
            float(retry_after) if retry_after and retry_after.isdigit() else None,
            detail=message,
        )

    # -- lists and watches ----------------------------------------------------------------

    def list_pages(self, path: str, *, params: Params | None = None, limit: int = 500) -> Iterator[kube_api.ListPage]:
        """Every page of a paginated list (``limit``/``continue``); all pages share the first
        page's resourceVersion. Raises :class:`Gone` if a continue token expires."""
        token = ""
        while True:
            query: dict[str, str | int] = {**(params or {}), "limit": limit}
            if token:
                query["continue"] = token
            page = kube_api.decode_list(self.request("GET", path, params=query).content)
            yield page
            token = page.continue_token
            if not token:
                return

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        params: Params | None = None,
        on_open: Callable[[requests.Response], None] | None = None,
    ) -> Generator[kube_api.WatchEvent, None, None]:
        """Stream watch events from ``resource_version`` until the server ends the watch.

        An ERROR event carrying 410 raises :class:`Gone` (relist); other ERROR events raise
        the matching :class:`ApiError`. A dropped connection raises :class:`TransportError`.
        ``on_open`` receives the streaming response, so another thread can interrupt the
        blocking read with :func:`interrupt`.
        """
        query = {
            **(params or {}),
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
        }
        # The read timeout is per socket read: idle streams get bookmarks or end at
        # timeoutSeconds, so a silent connection past that is dead.
        response = self.request("GET", path, params=query, stream=True, timeout=timeout_seconds + 30, retry=False)
        if on_open is not None:
            on_open(response)
        try:
            for line in response.iter_lines(chunk_size=65536):
                if not line:
                    continue
                event = kube_api.decode_watch_event(line)
                if event.type == "ERROR":
                    status = kube_api.decode_status(event.object)
                    code = status.code if status else 0
                    message = status.message if status else "watch ERROR event"
                    raise error_for(
                        code or 500, f"watch {path}: {message}", status.reason if status else "", detail=message
                    )
                yield event
        except requests.RequestException as exc:
            raise _transport_error(f"watch {path}", self.config.server, exc, timeout_seconds + 30, streaming=True) from exc
        finally:
            response.close()


def interrupt(response: requests.Response) -> None:
    """Unblock a thread reading ``response``'s stream (closing alone would not wake it)."""
    shutdown = getattr(response.raw, "shutdown", None)  # urllib3 >= 2.3
    try:
        if shutdown is not None:
            shutdown()
        response.close()
    except (OSError, RuntimeError, ValueError):
        pass  # the stream already ended and released its connection


__all__ = ["ApiError", "Backoff", "Gone", "KubeClient", "interrupt"]
