"""How the serving worker ends connections: deadlines, refusals, lingering, closing.

A mixin of :class:`~extender.serving.worker.BufferingWorker` (before gthread's worker in
its bases), kept apart so the worker module holds the reading and answering.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from functools import partial
from typing import Any

from extender.serving.connection import Conn, Limits
from extender.serving.inbox import RECV_SIZE
from extender.serving.notices import Notices
from extender.serving.replies import json_reply

#: how long a refused connection is drained so its client can read the refusal
LINGER = 2.0
#: how often connections are checked against their deadlines
SWEEP_INTERVAL = 0.1


def peer(conn: Conn) -> str:
    """The client's address, for log lines."""
    return str(conn.client[0]) if conn.client else "?"


class ConnectionEnds:
    """Deadlines, refusals and closing, over the worker's connection state."""

    #: connections receiving a request, with the deadline for it to be complete
    reading: dict[Conn, float]
    #: refused connections drained until their client has read the refusal
    closing: dict[Conn, float]
    limits: Limits
    notices: Notices
    poller: Any
    nr_conns: int
    alive: bool
    _next_sweep: float

    def _release(self, conn: Conn, keep: int = 0) -> None:
        raise NotImplementedError

    def murder_pending(self) -> None:
        """Each turn of the loop: requests past their deadline get 408; drained refusals
        are closed; a stopping worker closes connections that have sent nothing."""
        super().murder_pending()  # type: ignore[misc]  # gthread's: its pending connections
        now = time.monotonic()
        if now < self._next_sweep and self.alive:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for conn, deadline in list(self.reading.items()):
            if deadline <= now:
                if conn.inbox.started:
                    self._refuse(conn, 408, f"the request did not arrive within {self.limits.read_timeout:g} s"
                                 " (--read-timeout)")
                else:
                    self._close(conn)
            elif not self.alive and not conn.inbox.started:
                self._close(conn)
        for conn, deadline in list(self.closing.items()):
            if deadline <= now:
                self._close(conn)

    def _send(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # non-blocking: a small reply fits the socket buffer
        except (OSError, ssl.SSLError):
            pass

    def _refuse(self, conn: Conn, status: int, message: str) -> None:
        self.notices.notice(str(status), "refused a request from %s: %d %s", peer(conn), status, message)
        self.reading.pop(conn, None)
        self._send(conn, json_reply(status, message))
        self._linger(conn)

    def _linger(self, conn: Conn) -> None:
        """Close after the client has read what was sent: half-close, then drain what it
        still sends (a body nobody will read) until it closes or ``LINGER`` passes."""
        self._unregister(conn)
        self.reading.pop(conn, None)
        if not isinstance(conn.sock, ssl.SSLSocket):
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(conn)
                return
        try:
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, ValueError):
            self._close(conn)
            return
        self.closing[conn] = time.monotonic() + LINGER

    def _drain(self, conn: Conn, _fileobj: Any = None) -> None:
        try:
            while conn.sock.recv(RECV_SIZE):
                pass
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (OSError, ssl.SSLError):
            pass
        self._close(conn)  # end of stream, or the connection broke

    def _unregister(self, conn: Conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _close(self, conn: Conn) -> None:
        self._unregister(conn)
        self.reading.pop(conn, None)
        self.closing.pop(conn, None)
        self._release(conn)
        self.nr_conns -= 1
        try:
            conn.sock.close()
        except OSError:
            pass

