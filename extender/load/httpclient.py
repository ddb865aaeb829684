"""HTTP plumbing for sources that speak to a server over ``requests``.

- :class:`Deadline` bounds a whole fetch in wall-clock time. requests' ``timeout`` applies
  to each socket operation, so a server that trickles a byte a second would hold a fetch
  for as long as it likes; at the deadline a timer shuts down the socket of every
  connection used under it, which wakes the blocked read at once.
- :func:`session` makes a keep-alive Session whose connections register with the current
  deadline, and that can check the server's certificate against another name than the
  URL's host (Prometheus' ``tls_config.server_name``).
- :class:`SecretFile` reads a credential from a file and re-reads it when the file changes
  (a rotated token, a Kubernetes Secret's symlink swap).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Deadline:
    """``with Deadline(seconds):`` around a fetch: requests made in it by this thread through a
    :func:`session` are cut off when the time is up (they raise a requests error; check
    :attr:`expired`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        """Seconds left (never below a millisecond, so it can be a socket timeout)."""
        return max(self._end - time.monotonic(), 0.001)

    def __enter__(self) -> Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        _current.deadline = None
        with self._lock:
            self._connections.clear()

    def watch(self, connection: HTTPConnection) -> None:
        with self._lock:
            if not self.expired:
                self._connections.append(connection)
                return
        _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            connections, self._connections = self._connections, []
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:
        return
    try:
        # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would tear down
        # the TLS state another thread is reading with; this only makes its recv return
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watch(connection: HTTPConnection) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # also a reused keep-alive connection: each request registers
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _watch(self)  # before the TLS handshake, which a stalled server can hold too
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(HTTPAdapter):
    def __init__(self, server_name: str | None) -> None:
        self._server_name = server_name
        super().__init__(max_retries=0)  # a failed fetch is retried by the next refresh

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        if self._server_name:
            pool_kwargs["server_hostname"] = self._server_name  # SNI
            pool_kwargs["assert_hostname"] = self._server_name  # and the name the certificate must carry
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def session(server_name: str | None = None) -> requests.Session:
    """A Session for :class:`Deadline`-bounded requests. Pass ``verify=`` and ``cert=`` per
    request: with ``trust_env`` (kept, for proxies) a Session-level ``verify`` is replaced by
    ``REQUESTS_CA_BUNDLE``."""
    http = requests.Session()
    adapter = _Adapter(server_name)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


class SecretError(Exception):
    """A credential file is missing, unreadable or empty (the message names it)."""


class SecretFile:
    """A credential kept in a file, read again whenever the file changes (surrounding
    whitespace and the trailing newline are dropped, as Prometheus does)."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        self._signature: tuple[int, int, int] | None = None
        self._value = ""

    def read(self) -> str:
        try:
            status = os.stat(self.path)
            signature = (status.st_ino, status.st_mtime_ns, status.st_size)
            if signature != self._signature:
                with open(self.path, encoding="utf-8") as file:
                    value = file.read().strip()
                if not value:
                    raise SecretError(f"{self.what} {self.path} is empty")
                self._value, self._signature = value, signature
        except OSError as exc:
            raise SecretError(f"cannot read {self.what} {self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SecretError(f"{self.what} {self.path} is not UTF-8 text") from None
        return self._value
