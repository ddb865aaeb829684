"""The fast path: a verb call (or a probe) answered straight from the bytes the event loop received.

A names-mode call costs the extender about 0.2 ms of its own work, and gunicorn's parser,
its WSGI environ and response, and Flask's request handling cost about four times that
(benchmarks/cpu_per_call.py). kube-scheduler's calls are all alike (``POST`` of a JSON body
with a Content-Length, HTTP/1.1, keep-alive), so for exactly that shape the worker reads the
request line and headers itself (:func:`match`), hands the body to the app's
:class:`~extender.web.verbs.VerbEndpoint`, and writes the response head itself
(:func:`response`), with the headers gunicorn would have sent.

kubelet's probes (``GET /healthz``, ``GET /readyz``) take it too. Anything else (another
method or path, a query string, chunked bodies, HTTP/1.0, upgrades, a header this module
does not read unambiguously) returns None from :func:`match` and goes
the full way through gunicorn and Flask, which answer it (or refuse it) as before. The fast
path never refuses a request itself: it only declines to take it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from extender.web.probes import PROBE_PATHS, Probes
from extender.web.verbs import PURE_VERBS, VerbEndpoint

#: "POST|GET <absolute path> HTTP/1.1", the path made of what a URL path may hold unescaped
_REQUEST_LINE = re.compile(rb"(POST|GET) (/[A-Za-z0-9._~!$&'()*+,;=:@/-]*) HTTP/1\.1")
#: a header field RFC 9110 §5 allows, with the value's visible ASCII only (no obs-text, no
#: obs-fold), so it means the same here as to gunicorn's parser
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*((?:[!-~]+(?:[ \t]+[!-~]+)*)?)[ \t]*")
#: as gunicorn's limits (limit_request_line, limit_request_fields, limit_request_field_size)
MAX_REQUEST_LINE = 4094
MAX_FIELDS = 100
MAX_FIELD = 8190
#: largest body a pure verb (filter, prioritize) is answered with in the event loop itself:
#: a names-mode call (5000 names is ~100 KB) takes about a millisecond; a full-node body takes
#: a thread, so the loop keeps serving the other connections meanwhile
INLINE_BODY = 256 * 1024
#: what is answered in the event loop: what only computes (no API calls, no waiting)
INLINE = frozenset(PURE_VERBS | set(PROBE_PATHS))
#: replies larger than this are written after their head rather than copied behind it
COPY_LIMIT = 64 * 1024
#: headers that change how a request is framed or handled, or that gunicorn checks against
#: its forwarding settings: such requests go the full way
_DECLINED = frozenset({b"transfer-encoding", b"upgrade", b"http2-settings", b"te", b"forwarded", b"x-forwarded-proto",
                       b"x-forwarded-protocol", b"x-forwarded-ssl", b"x-forwarded-for"})


#: what the fast path answers: (method, path) -> a name of it (a verb, a probe)
Targets = Mapping[tuple[bytes, bytes], str]


@dataclass(frozen=True, slots=True)
class FastCall:
    """A request the fast path takes."""

    #: what it asks for: the name ``targets`` gives its method and path
    target: str
    #: the Content-Type header's value, or None if there was none
    content_type: str | None
    #: whether the client keeps the connection (no ``Connection: close``)
    keep_alive: bool


def match(head: bytes, targets: Targets) -> FastCall | None:
    """The call ``head`` (request line and headers, with the empty line that ends them) is,
    if the fast path takes it; None sends the request the full way."""
    lines = head.split(b"\r\n")
    if len(lines) > MAX_FIELDS + 3 or lines[-2:] != [b"", b""]:
        return None
    request_line = lines[0]
    if len(request_line) > MAX_REQUEST_LINE:
        return None
    target = _REQUEST_LINE.fullmatch(request_line)
    if target is None:
        return None
    called = targets.get((target.group(1), target.group(2)))
    if called is None:
        return None
    content_type: str | None = None
    keep_alive = True
    seen_connection = seen_host = False
    for line in lines[1:-2]:
        field = _FIELD.fullmatch(line) if len(line) <= MAX_FIELD else None
        if field is None:
            return None
        name = field.group(1).lower()
        if name == b"content-type":
            if content_type is not None:
                return None  # repeated: gunicorn refuses it (RFC 9110 §5.3)
            content_type = field.group(2).decode("ascii")
        elif name == b"host":
            if seen_host:
                return None  # likewise
            seen_host = True
        elif name == b"connection":
            # gunicorn reads the first Connection header as one word (not a list of
            # options): take only what it and RFC 9112 read alike
            option = field.group(2).lower()
            if seen_connection or option not in (b"close", b"keep-alive"):
                return None
            seen_connection = True
            keep_alive = option == b"keep-alive"
        elif name == b"expect":
            if field.group(2).lower() != b"100-continue":
                return None  # gunicorn answers 417
        elif name in _DECLINED:
            return None
    return FastCall(called, content_type, keep_alive)


class _Date:
    """The Date header's value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._value = formatdate(second, usegmt=True).encode("ascii")
            self._second = second
        return self._value


_date = _Date()
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in HTTPStatus}


def response_head(status: int, length: int, keep_alive: bool) -> bytes:
    """The response's head, as gunicorn writes it for the Flask app."""
    return b"".join((
        _STATUS_LINES[status],
        b"Server: gunicorn\r\nDate: ",
        _date.now(),
        b"\r\nConnection: keep-alive\r\n" if keep_alive else b"\r\nConnection: close\r\n",
        b"Content-Type: application/json\r\nContent-Length: ",
        str(length).encode("ascii"),
        b"\r\n\r\n",
    ))


def response(status: int, body: bytes, keep_alive: bool) -> bytes:
    """The whole HTTP/1.1 response (one buffer: one send)."""
    return response_head(status, len(body), keep_alive) + body


class FastPath:
    """The app's verbs and probes as the worker answers them itself."""

    def __init__(self, verbs: VerbEndpoint | None, probes: Probes | None) -> None:
        self.verbs = verbs
        self.probes = probes
        self.targets: dict[tuple[bytes, bytes], str] = {}
        if verbs is not None:
            self.targets.update(((b"POST", path.encode("ascii")), verb) for path, verb in verbs.paths.items())
        if probes is not None:
            self.targets.update(((b"GET", path.encode("ascii")), name) for name, path in PROBE_PATHS.items())

    @classmethod
    def of_app(cls, app: Any) -> FastPath | None:
        """The fast path of a Flask app made by :func:`extender.web.app.create_app` (None for
        another WSGI app: everything then goes the full way)."""
        extensions = getattr(app, "extensions", None)
        if not isinstance(extensions, dict):
            return None
        verbs, probes = extensions.get("extender.verbs"), extensions.get("extender.probes")
        fast = cls(verbs if isinstance(verbs, VerbEndpoint) else None, probes if isinstance(probes, Probes) else None)
        return fast if fast.targets else None

    def match(self, head: bytes, probes_only: bool = False) -> FastCall | None:
        """The call ``head`` is, if the fast path takes it (on the probe port: probes only)."""
        call = match(head, self.targets)
        if call is not None and probes_only and call.target not in PROBE_PATHS:
            return None  # the full path answers 404 there
        return call

    @staticmethod
    def inline(call: FastCall, body_length: int) -> bool:
        """Whether the event loop answers it itself (else a thread does)."""
        return call.target in INLINE and body_length <= INLINE_BODY

    def answer(self, call: FastCall, body: Any) -> tuple[int, bytes]:
        """Status and JSON body, from the verb endpoint or the probes."""
        if call.target in PROBE_PATHS:
            assert self.probes is not None
            return self.probes.answer(call.target)
        assert self.verbs is not None
        return self.verbs.answer(call.target, call.content_type, body)

    @staticmethod
    def write(sock: Any, status: int, body: bytes, keep_alive: bool) -> None:
        """Write the response on a blocking socket (a thread's)."""
        if len(body) > COPY_LIMIT:  # a full-node reply: not copied behind its head
            sock.sendall(response_head(status, len(body), keep_alive))
            sock.sendall(body)
        else:
            sock.sendall(response(status, body, keep_alive))
