"""A gunicorn worker that takes a thread only for a request that has arrived whole.

gunicorn's gthread worker hands a connection to a thread as soon as its first bytes arrive;
the thread then blocks reading the body. Eight clients that send headers and then trickle
(or never finish) their body held all 2 x 4 threads and stalled every scheduling call.
This worker keeps gthread's thread pool, keep-alive handling and graceful shutdown, but its
event loop does all the reading, non-blocking: TLS handshakes, heads and bodies are
received into memory (:class:`~extender.serving.inbox.Inbox`) under a deadline per
request, and only a complete request is queued for a thread. A thread then never waits on a
client to send; it waits on one to read only up to ``write_timeout``.

Bounds, per worker: ``worker_connections`` connections (the oldest idle keep-alive one is
closed to make room for a new one), ``read_timeout`` seconds for a request to arrive from its
first byte (from the accept for a new connection, the TLS handshake included),
``max_body_bytes`` per request, ``max_held_bytes`` received but not yet answered across all
connections. Refusals are JSON, as from the app: 408, 413, 431, 400, 503.
"""

from __future__ import annotations

import errno
import logging
import selectors
import signal
import socket
import ssl
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker

from extender.serving import fastpath
from extender.serving.closing import ConnectionEnds, peer
from extender.serving.fastpath import FastPath
from extender.serving.connection import Conn, Limits
from extender.serving.framing import FramingError
from extender.serving.inbox import RECV_SIZE, Progress
from extender.serving.notices import Notices
from extender.serving.received import ReceivedRequest
from extender.serving.replies import json_reply, parse_error_status
from extender.serving.tls import ReloadingContext, TLSFiles
from extender.settings import Settings
from extender.web.probes import PROBE_PATHS
from extender.web.telemetry import METRICS_PATH
from extender.web.status import STATUS_PATH

log = logging.getLogger("extender.serving")

#: bytes one connection may take per turn of the event loop before the others get theirs
READ_TURN = 1024 * 1024
#: connections accepted per turn of the event loop at most
ACCEPT_BATCH = 64
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: what the probe port answers: kubelet's liveness and readiness probes, and Prometheus'
#: scrapes (which present no client certificate under mTLS either; README "Metrics")
PROBES = {("GET", path) for path in PROBE_PATHS.values()} | {("GET", METRICS_PATH)}
#: how often the worker tells the arbiter it is alive (gthread does on every turn of its
#: loop, a syscall per request; the arbiter's timeout is 30 s)
NOTIFY_INTERVAL = 1.0


def _is_status(path: str) -> bool:
    return path == STATUS_PATH or path.startswith(f"{STATUS_PATH}/")


class BufferingWorker(ConnectionEnds, ThreadWorker):  # type: ignore[misc]
    """gthread with every read in the event loop; see the module docstring."""

    #: SIGHUP is never reset to its default (which kills): from the fork it is the master's
    #: handler (a no-op here; the app is loaded after, from the file as it is then), then ours
    SIGNALS = [sig for sig in ThreadWorker.SIGNALS if sig != signal.SIGHUP]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: connections receiving a request, with the deadline for it to be complete
        self.reading: dict[Conn, float] = {}
        #: refused connections drained until their client has read the refusal
        self.closing: dict[Conn, float] = {}
        self.held_bytes = 0
        self._next_sweep = 0.0
        self.limits: Limits
        self.tls: ReloadingContext | None = None
        self.notices = Notices(log)
        self._scratch = bytearray(RECV_SIZE)  # the event loop's receive buffer, shared by its connections
        #: the app's verbs and probes, answered without gunicorn's parser or WSGI (None:
        #: every request goes the full way)
        self.fast: FastPath | None = None
        self._notified = 0.0

    # -- set-up ---------------------------------------------------------------------------

    def init_process(self) -> None:
        settings = getattr(self.app, "settings", None)
        if not isinstance(settings, Settings):  # run as gunicorn -c python:extender.gunicorn_conf
            settings = Settings.from_env()
        # gunicorn's own limits on the request line and header fields still apply when its
        # parser reads the head; this bounds what is buffered before that.
        head_limit = self.cfg.limit_request_line + self.cfg.limit_request_fields * (self.cfg.limit_request_field_size + 2) + 4
        self.limits = Limits.from_settings(settings, head_limit)
        if settings.tls_cert and settings.tls_key:
            self.tls = ReloadingContext(TLSFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca))
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.fast = FastPath.of_app(self.wsgi)

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._notified >= NOTIFY_INTERVAL:
            self._notified = now
            super().notify()

    def init_signals(self) -> None:
        signal.signal(signal.SIGHUP, self.handle_hup)
        signal.siginterrupt(signal.SIGHUP, False)
        super().init_signals()

    def handle_hup(self, sig: int, frame: Any) -> None:
        """SIGHUP (forwarded by the master): the app re-reads its policy now (ExtenderServer.hangup)."""
        hangup = getattr(self.app, "hangup", None)
        if hangup is not None:
            hangup()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: tell the app (``/readyz`` answers 503 from now on), then drain."""
        draining = getattr(self.app, "draining", None)
        if draining is not None:
            draining.set()
        super().handle_exit(sig, frame)

    # -- accepting and reading (event loop) ------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        """Accept what the listener has queued (a batch: one per turn lets a flood of
        connections back up the queue in front of kube-scheduler's)."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, client = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            conn = Conn(self.cfg, sock, client, listener.getsockname(), self.limits, self._hold, self._scratch)
            if self.tls is not None and not conn.probes_only and not conn.admin_only:
                try:
                    conn.sock = self.tls.current().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ssl.SSLError):
                    self._close(conn)
                    continue
                conn.handshaking = True
            self._start_reading(conn)
            self.on_readable(conn)
            if self.nr_conns >= self.worker_connections:
                self._make_room(keep=conn)

    def _hold(self, conn: Conn, count: int) -> None:
        conn.held += count
        self.held_bytes += count

    def _release(self, conn: Conn, keep: int = 0) -> None:
        freed = conn.held - keep
        conn.held = keep
        self.held_bytes -= freed

    def _start_reading(self, conn: Conn) -> None:
        self.reading[conn] = time.monotonic() + self.limits.read_timeout
        self._watch(conn)

    def _watch(self, conn: Conn, events: int = selectors.EVENT_READ) -> None:
        """Have the selector call :meth:`_on_event` for the connection. One callback per
        connection, whatever its state: a connection answered in the event loop stays
        registered as it was, so going from request to request costs no selector call."""
        if conn.on_event is None:
            conn.on_event = partial(self._on_event, conn)
        try:
            self.poller.modify(conn.sock, events, conn.on_event)  # a no-op unless the events change
        except KeyError:
            self.poller.register(conn.sock, events, conn.on_event)

    def _on_event(self, conn: Conn, _fileobj: Any = None) -> None:
        if conn in self.reading:
            self.on_readable(conn)
        elif conn.idle:
            self.on_client_socket_readable(conn, conn.sock)

    def _make_room(self, keep: Conn) -> None:
        """At the connection limit, close one so the listener stays open to kube-scheduler:
        a refusal still draining, else the request that has been arriving longest (a
        legitimate one arrives in milliseconds: the slowest is the likeliest attacker), else
        the oldest idle keep-alive connection."""
        while self.nr_conns >= self.worker_connections:
            if self.closing:
                self._close(next(iter(self.closing)))
                continue
            oldest = next((c for c in self.reading if c is not keep), None)  # dicts keep insertion order
            if oldest is not None:
                self.notices.notice("evicted", "at %d connections: dropped the oldest unfinished request, from %s",
                                    self.worker_connections, peer(oldest))
                self._send(oldest, json_reply(503, "too many connections: the oldest unfinished request was dropped"))
                self._close(oldest)
                continue
            if not self.keepalived_conns:
                return  # every other connection is being answered by a thread
            self._close(self.keepalived_conns.popleft())

    def on_readable(self, conn: Conn, _fileobj: Any = None) -> None:
        """Take what the connection has; queue the request for a thread once it is whole."""
        if conn not in self.reading:
            return  # a turn deferred before the connection was dispatched or closed
        try:
            if conn.handshaking and not self._handshake(conn):
                return
            progress = conn.inbox.receive(conn.sock, READ_TURN)
        except FramingError as exc:
            self._refuse(conn, exc.status, exc.message)
            return
        except (OSError, ssl.SSLError):
            self._close(conn)
            return
        if self.held_bytes > self.limits.max_held_bytes:
            self._refuse(conn, 503, f"the extender holds more than {self.limits.max_held_bytes} bytes of requests"
                         " in progress; retry shortly")
        elif progress is Progress.COMPLETE:
            self._dispatch(conn)
        elif progress is Progress.CLOSED:
            if conn.inbox.started:
                expected = conn.inbox.expected
                of = f" of {expected}" if expected is not None else ""
                self._refuse(conn, 400, f"the request ended after {conn.inbox.received}{of} bytes: it was cut short")
            else:
                self._close(conn)
        elif progress is Progress.BUDGET:
            # Other connections get their turn; a TLS connection may hold decrypted bytes
            # the selector cannot see, so come back without waiting for readiness.
            self.method_queue.defer(self.on_readable, conn)
        elif conn.inbox.continue_due:
            conn.inbox.continue_due = False
            self._send(conn, _CONTINUE)

    def _handshake(self, conn: Conn) -> bool:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn)
            return False
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return False
        except (ssl.SSLError, OSError) as exc:
            self._handshake_failed(conn, exc)
            return False
        conn.handshaking = False
        self._watch(conn)
        return True

    def _handshake_failed(self, conn: Conn, exc: BaseException) -> None:
        # A client without the right certificate, or a port scan: worth a line, not a trace.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        detail = getattr(exc, "verify_message", None)  # why a client certificate was not accepted
        if detail:
            reason = f"{reason} ({detail})"
        self.notices.notice(f"tls {reason}", "TLS handshake with %s refused: %s", peer(conn), reason)
        self._close(conn)

    def _dispatch(self, conn: Conn) -> None:
        del self.reading[conn]
        request = conn.inbox.take()
        call = self.fast.match(request.head, conn.probes_only) if self.fast is not None and not conn.admin_only else None
        if call is not None and FastPath.inline(call, len(request.body)):
            self._answer_inline(conn, call, request.body)
            return
        self._unregister(conn)  # a thread takes the socket, blocking
        conn.request, conn.call = request, call
        self.enqueue_req(conn)

    def _answer_inline(self, conn: Conn, call: fastpath.FastCall, body: Any) -> None:
        """Answer a pure verb or a probe in the event loop: no thread, no future, no
        wake-up. The reply goes out non-blocking; what the socket does not take at once (a
        client slow to read) is written by a thread, under the write timeout."""
        assert self.fast is not None
        status, answer = self.fast.answer(call, body)
        keep_alive = call.keep_alive and self.alive
        data = fastpath.response(status, answer, keep_alive)
        try:
            sent = conn.sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            sent = 0  # TLS: retried whole, as OpenSSL requires
        except (OSError, ssl.SSLError):
            self._close(conn)
            return
        if sent < len(data):
            self._unregister(conn)
            conn.unsent, conn.unsent_keep_alive = memoryview(data)[sent:], keep_alive
            self.enqueue_req(conn)
            return
        self._answered(conn, keep_alive, inline=True)

    def on_client_socket_readable(self, conn: Conn, client: Any) -> None:
        """An idle keep-alive connection has the start of its next request."""
        conn.idle = False
        self.keepalived_conns.remove(conn)
        self._start_reading(conn)
        self.on_readable(conn)

    # -- handling (thread pool) ------------------------------------------------------------

    def handle(self, conn: Conn) -> bool:
        """Serve the received request; whether the connection may be kept alive."""
        request, conn.request = conn.request, None
        call, conn.call = conn.call, None
        unsent, conn.unsent = conn.unsent, None
        req = None
        try:
            # Blocking from here on, so the response is written in one go, within a deadline:
            # a client that does not read its response cannot hold this thread for long.
            conn.sock.settimeout(self.limits.write_timeout)
            if unsent is not None:  # the rest of a reply the event loop could not write at once
                conn.sock.sendall(unsent)
                return conn.unsent_keep_alive
            assert request is not None
            if call is not None:
                assert self.fast is not None
                status, answer = self.fast.answer(call, request.body)
                keep_alive = call.keep_alive and self.alive
                FastPath.write(conn.sock, status, answer, keep_alive)
                return keep_alive
            parser = http.get_parser(self.cfg, (), conn.client)
            parser.unreader = ReceivedRequest(request.head, request.body)
            conn.parser = parser
            req = next(parser)
            req._expected_100_continue = False  # the event loop has answered it
            if conn.probes_only and (req.method, req.path) not in PROBES:
                conn.sock.sendall(json_reply(404, "the probe port serves only GET /healthz, GET /readyz and GET /metrics"))
                return False
            if conn.admin_only != _is_status(req.path):  # the status page on its own port only
                where = "the admin port serves only GET /status" if conn.admin_only else f"no such endpoint: {req.method} {req.path}"
                conn.sock.sendall(json_reply(404, where))
                return False
            keep_alive = bool(self.handle_request(req, conn))
            return keep_alive and bool(parser.finish_body())
        except StopIteration:
            return False
        except (OSError, ssl.SSLError) as exc:  # the client went away or stopped reading
            log.debug("connection to %s lost while answering: %s", conn.client, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - every error is answered, never fatal
            self.handle_error(req, conn.sock, conn.client, exc)
            return False

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request gunicorn's parser rejected, or an unexpected error, in JSON."""
        status = parse_error_status(exc)
        if status is None:
            log.exception("internal error serving %s", getattr(req, "uri", "a request"), exc_info=exc)
            status, message = 500, "internal error; see the extender's log"
        else:
            message = f"malformed request: {exc}"
            self.notices.notice("malformed", "malformed request from %s: %s", addr[0] if addr else "?", exc)
        try:
            client.sendall(json_reply(status, message))
        except (OSError, ssl.SSLError):
            pass

    def finish_request(self, conn: Conn, fs: Any) -> None:
        """Back in the event loop: keep the connection alive, or close it."""
        try:
            keep_alive = not fs.cancelled() and fs.result()
        except Exception:  # noqa: BLE001
            keep_alive = False
        self._answered(conn, bool(keep_alive))

    def _answered(self, conn: Conn, keep_alive: bool, inline: bool = False) -> None:
        """A request is answered: wait for the next one on the connection, or close it.
        ``inline``: answered in the event loop, so a request pipelined behind it is
        dispatched on a later turn (not from inside this one, request after request)."""
        self._release(conn, keep=conn.inbox.received)
        if not keep_alive:
            self._linger(conn)
            return
        if not inline:  # back from a thread, which made it blocking
            try:
                conn.sock.setblocking(False)
            except OSError:
                self._close(conn)
                return
        pending_tls = isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() > 0
        if conn.inbox.started or pending_tls:  # the client already sent (some of) its next request
            self._start_reading(conn)
            if conn.inbox.restart() is Progress.COMPLETE and not inline:
                self._dispatch(conn)
            else:  # on_readable dispatches it once whole (if the selector has not meanwhile)
                self.method_queue.defer(self.on_readable, conn)
            return
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
        conn.idle = True
        self.keepalived_conns.append(conn)
        self._watch(conn)
