"""A fake kube-apiserver (v1.24) for the extender's API client, watch caches and binder.

It replays the traffic recorded from a real kube-apiserver in
``shared/fixtures/kube-apiserver-v1.24`` and behaves like the real server where the
recordings are silent (storage semantics: :mod:`tests.kube.fake_store`)::

    with FakeApiServer() as server:                 # http://127.0.0.1:<port>, token "test-token"
        server.modify_node("node-00001", lambda n: n["metadata"]["labels"].update(x="y"))
        server.fail_next("GET", "/api/v1/nodes", 503, retry_after=1)
        server.requests[-1].headers["Authorization"]
        server.stop(); server.start()               # an outage: connections refused, same port after

Endpoints: ``GET /api/v1/nodes`` (list, watch), ``/api/v1/nodes/<name>``, ``/api/v1/pods``
and ``/api/v1/namespaces/<ns>/pods`` (list, watch), ``.../pods/<name>``,
``POST .../pods/<name>/binding``, ``POST /apis/events.k8s.io/v1/namespaces/<ns>/events``
(validated as the real server does; kept in :attr:`FakeApiServer.created_events`), ``/version``, ``/healthz``, ``/livez``, ``/readyz``. Any
``/apis/<group>/...`` is the plain-text 404 of an API group that is not installed (as the
recorded metrics.k8s.io); other paths are a 404 Status, other methods on known paths 405.
With ``metrics_server=True`` (or :meth:`set_node_metrics`), ``/apis/metrics.k8s.io/v1beta1/nodes``
and ``.../nodes/<name>`` answer NodeMetricsList and NodeMetrics as metrics-server v0.6 does.

On the wire, as the real server: compact JSON and a newline; ``Audit-Id`` and
``Cache-Control: no-cache, private`` on every response; gzip above 128 KiB when the client
accepts it. Watches: 200 with ``Transfer-Encoding: chunked``, one event per chunk and line,
written as it happens; a clean end at ``timeoutSeconds``. Unlike Go's net/http, every
non-watch body carries a Content-Length (Go would chunk bodies over 2 KiB).
"""

from __future__ import annotations

import gzip
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from requests.structures import CaseInsensitiveDict

from .fake_store import (
    NODES,
    PODS,
    ClusterStore,
    Event,
    JsonObj,
    ResourceType,
    Selector,
    StatusError,
    Watch,
    go_json,
    recorded_nodes,
    recorded_pods,
    status_body,
)
from .fake_events import EventStore
from .tls import TlsFiles

#: what ``/version`` answers (the v1.24.0 release build)
VERSION_INFO = {
    "major": "1",
    "minor": "24",
    "gitVersion": "v1.24.0",
    "gitCommit": "4ce5a8954017644c5420bae81d72b09b735c21f0",
    "gitTreeState": "clean",
    "buildDate": "2022-05-03T13:38:19Z",
    "goVersion": "go1.18.1",
    "compiler": "gc",
    "platform": "linux/amd64",
}
#: the real priority-and-fairness 429 is this plain text, not a Status (pass it as ``body``)
TOO_MANY_REQUESTS_TEXT = "Too many requests, please try again later.\n"
#: Go's http.NotFound body (recorded in metrics-api-absent.json)
PAGE_NOT_FOUND = b"404 page not found\n"
GZIP_THRESHOLD = 128 * 1024

#: reason and message of an injected failure (apimachinery's NewGenericServerResponse and friends)
_FAILURES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by the fake apiserver"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "The resourceVersion for the provided list is too old."),
    # what an admission webhook or a validating policy on pods/binding answers
    422: ("Invalid", 'Binding "gpu-1" is invalid: target.name: Invalid value: "node_1": a lowercase RFC 1123 subdomain'),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the fake apiserver"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be processing the request",
    ),
}

_COLLECTION = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<resource>nodes|pods)$")
_OBJECT = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<resource>nodes|pods)/(?P<name>[^/]+)$")
_BINDING = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/binding$")
_EVENTS = re.compile(r"^/apis/events\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/events$")
_NODE_METRICS = re.compile(r"^/apis/metrics\.k8s\.io/v1beta1/nodes(?:/(?P<name>[^/]+))?$")
_GO_TRUE, _GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("", "0", "f", "F", "FALSE", "false", "False")


@dataclass
class RecordedRequest:
    """One request as the fake received it (before faults, delays and authentication)."""

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    body: bytes
    #: CN of the verified client certificate (None: none presented or plain HTTP)
    client_cert_cn: str | None = None
    #: status code answered (None while a request is still being served)
    status: int | None = None

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", "") in _GO_TRUE


@dataclass
class _Fault:
    method: str
    path_prefix: str
    status: int
    times: int
    retry_after: int | None
    body: JsonObj | bytes | str | None


@dataclass
class _Delay:
    path_prefix: str
    seconds: float
    times: int


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _status_response(error: StatusError) -> _Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
    return _Response(error.code, go_json(error.body) + b"\n", headers=headers)


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection; HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections
    server: _HttpServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):  # handshake here, not in the accept loop
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- one request -----------------------------------------------------------------------

    def _serve(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        record = RecordedRequest(
            self.command, path, query, CaseInsensitiveDict(self.headers.items()), self._read_body(), self._client_cn()
        )
        fake.requests.append(record)
        try:
            fake._delay(path)
            response = fake._fault(self.command, path)
            if response is None and not fake._authenticated(self.headers.get("Authorization", ""), record.client_cert_cn):
                response = _status_response(StatusError(401, "Unauthorized", "Unauthorized"))
            if response is None:
                response = self._route(record)
        except StatusError as error:
            response = _status_response(error)
        if response is not None:  # None: a watch, already streamed
            record.status = response.status
            self._send(response)

    def _route(self, req: RecordedRequest) -> _Response | None:
        store, path, method = self.server.fake.store, req.path, self.command
        if path in ("/healthz", "/livez", "/readyz", "/version"):
            self._require(method, "GET")
            if path == "/version":
                return _Response(200, go_json(VERSION_INFO) + b"\n")
            return _Response(200, b"ok", "text/plain; charset=utf-8", {"X-Content-Type-Options": "nosniff"})
        if (match := _NODE_METRICS.match(path)) and self.server.fake.metrics_server:
            self._require(method, "GET")
            return self.server.fake._node_metrics(match["name"])
        if match := _EVENTS.match(path):
            self._require(method, "POST")
            return _Response(201, go_json(self.server.fake.event_store.create(match["ns"], req.body)) + b"\n")
        if path.startswith("/apis/"):  # no aggregated or custom API group is installed
            return _Response(404, PAGE_NOT_FOUND, "text/plain; charset=utf-8", {"X-Content-Type-Options": "nosniff"})
        if match := _BINDING.match(path):
            self._require(method, "POST")
            store.bind(match["ns"], match["name"], req.body)
            return _Response(201, go_json(status_body(201, "", "", success=True)) + b"\n")
        if (match := _OBJECT.match(path)) and self._scoped(match):
            self._require(method, "GET")
            rt = NODES if match["resource"] == "nodes" else PODS
            stored = store.get(rt, match["ns"], match["name"])
            return _Response(200, rt.type_prefix + stored.json[1:] + b"\n")
        if (match := _COLLECTION.match(path)) and (match["resource"] == "pods" or not match["ns"]):
            self._require(method, "GET")
            rt = NODES if match["resource"] == "nodes" else PODS
            return self._collection(rt, match["ns"], req)
        raise StatusError(404, "NotFound", "the server could not find the requested resource", details={})

    @staticmethod
    def _scoped(match: re.Match[str]) -> bool:
        """Pods are namespaced, nodes are not: anything else is not a route."""
        return (match["resource"] == "pods") == bool(match["ns"])

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            message = "the server does not allow this method on the requested resource"
            raise StatusError(405, "MethodNotAllowed", message, details={})

    def _collection(self, rt: ResourceType, namespace: str | None, req: RecordedRequest) -> _Response | None:
        query = req.query

        def number(name: str) -> int:
            text = query.get(name, "") or "0"
            if not text.lstrip("-").isdigit():
                raise StatusError(400, "BadRequest", f'strconv.ParseInt: parsing "{text}": invalid syntax')
            return int(text)

        def flag(name: str) -> bool:
            text = query.get(name, "")
            if text not in _GO_TRUE + _GO_FALSE:
                raise StatusError(400, "BadRequest", f'strconv.ParseBool: parsing "{text}": invalid syntax')
            return text in _GO_TRUE

        selector = Selector.parse(rt, query.get("fieldSelector", ""), query.get("labelSelector", ""))
        resource_version = query.get("resourceVersion", "")
        store = self.server.fake.store
        if not flag("watch"):
            result = store.list_objects(
                rt,
                namespace,
                selector,
                limit=number("limit"),
                continue_token=query.get("continue", ""),
                resource_version=resource_version,
                match=query.get("resourceVersionMatch", ""),
            )
            return _Response(200, result.encode())
        timeout = number("timeoutSeconds") or self.server.fake.min_request_timeout * (1 + random.random())
        watch = store.watch(rt, namespace, selector, resource_version, flag("allowWatchBookmarks"))
        req.status = 200
        try:
            self._stream(watch, timeout)
        finally:
            store.close_watch(watch)
        return None

    # -- writing -----------------------------------------------------------------------------

    def _stream(self, watch: Watch, timeout: float) -> None:
        """Write the watch's events as chunks until it ends, times out or is dropped."""
        store = self.server.fake.store
        self._start_response(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        deadline = time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                lines, state = store.next_lines(watch, remaining)
                if state == "dropped":
                    self._reset_connection()
                    return
                for line in lines:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                if state == "ended":
                    break
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            self.close_connection = True

    def _send(self, response: _Response) -> None:
        body, headers = response.body, dict(response.headers)
        accepts = self.headers.get("Accept-Encoding", "")
        if len(body) > GZIP_THRESHOLD and "gzip" in accepts and response.content_type == "application/json":
            body = gzip.compress(body, compresslevel=1)
            headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        headers.update({"Content-Type": response.content_type, "Content-Length": str(len(body))})
        try:
            self._start_response(response.status, headers)
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _start_response(self, status: int, headers: dict[str, str]) -> None:
        """Status line and headers in Go's (sorted) order, without a Server header."""
        self.send_response_only(status)
        common = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private", "Date": self.date_time_string()}
        headers = {**common, **headers}
        for name in sorted(headers):
            self.send_header(name, headers[name])
        self.end_headers()

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0: the client gets a TCP RST mid-stream, not a clean end."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile reference so close() really closes the socket
            self.connection.close()
        except OSError:
            pass

    # -- reading -----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _client_cn(self) -> str | None:
        if not isinstance(self.connection, ssl.SSLSocket):
            return None
        cert: Any = self.connection.getpeercert() or {}
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeApiServer, context: ssl.SSLContext | None, port: int) -> None:
        self.fake, self.context = fake, context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # HTTPServer's would resolve the host name (slow, useless)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # resets, TLS failures, timeouts: expected
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in self.connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class FakeApiServer:
    """A kube-apiserver v1.24 on ``127.0.0.1:<random port>``, seeded with the recorded cluster.

    The state starts as the recordings: 8 nodes (6 from the recorded list pages, node-00006
    and node-00007 from kube-scheduler's recorded request) and the 3 recorded pods, all with
    their recorded resourceVersions; the revision counter starts at ``initial_rv``. 502 (the
    default) reproduces the recorded node list pages, 513 the recorded pod lists, 506 the
    recorded watch (its first event is 507). Watches and continue tokens older than
    ``initial_rv`` are expired, as on a server whose watch cache started there.

    ``token`` (reassignable at any time) is the bearer token every request needs; None
    admits anonymous requests. With ``tls`` it serves HTTPS; a client certificate signed by
    the CA also authenticates, and ``require_client_cert`` refuses handshakes without one.

    ``port`` 0 (the default) picks a free port at the first :meth:`start`; a stopped server
    starts again on the same port with the same state (an API server restart or outage).
    """

    def __init__(
        self,
        *,
        token: str | None = "test-token",
        tls: TlsFiles | None = None,
        require_client_cert: bool = False,
        initial_rv: int = 502,
        nodes: list[JsonObj] | None = None,
        pods: list[JsonObj] | None = None,
        port: int = 0,
        metrics_server: bool = False,
    ) -> None:
        self.token = token
        #: whether metrics.k8s.io is served (False: its plain-text 404, as without metrics-server)
        self.metrics_server = metrics_server
        #: NodeMetrics usage by node name: ``{"cpu": "250m", "memory": "1234Ki"}`` and the
        #: item's ``timestamp`` (RFC 3339); nodes without an entry are not reported
        self.node_metrics: dict[str, JsonObj] = {}
        self.port = port
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.store = ClusterStore(
            initial_rv=initial_rv,
            nodes=recorded_nodes() if nodes is None else nodes,
            pods=recorded_pods() if pods is None else pods,
        )
        #: events.k8s.io/v1 Events created (``created_events``: as stored, oldest first)
        self.event_store = EventStore()
        #: every request received, in order (append-only; clear() it at will)
        self.requests: list[RecordedRequest] = []
        #: a watch without timeoutSeconds lasts this * (1 + random()) seconds, as --min-request-timeout
        self.min_request_timeout = 1800
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._lock = threading.Lock()
        #: set to cut the current delays short (stop(), clear_delays()); replaced after
        self._wake = threading.Event()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        if self._httpd is None:
            self._wake = threading.Event()
            self._httpd = _HttpServer(self, self._ssl_context(), self.port)
            self.port = self._httpd.server_port
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-apiserver", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the watches, stop serving and close every connection."""
        if self._httpd is None:
            return
        self._wake.set()
        self.store.end_watches(wait=1.0)
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        context.load_verify_locations(self.tls.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        return context

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``"""
        if self._httpd is None:
            raise RuntimeError("the fake apiserver is not started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._httpd.server_port}"

    # -- state -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The current revision (the last write's resourceVersion)."""
        return self.store.rv

    @property
    def nodes(self) -> dict[str, JsonObj]:
        """Deep copies of the nodes, by name."""
        return self.store.snapshot(NODES)

    @property
    def pods(self) -> dict[tuple[str, str], JsonObj]:
        """Deep copies of the pods, by ``(namespace, name)``."""
        return self.store.snapshot(PODS)

    @property
    def created_events(self) -> list[JsonObj]:
        """The events.k8s.io/v1 Events created, as stored, oldest first."""
        return self.event_store.created()

    @property
    def events(self) -> list[Event]:
        """The event log: (rv, type, kind, object) of every write, oldest first."""
        with self.store.cond:
            return list(self.store.log)

    def add_node(self, obj: JsonObj) -> JsonObj:
        """Create a node (ADDED); returns it as stored."""
        return self.store.create(NODES, obj)

    def modify_node(self, name: str, fn: Callable[[JsonObj], JsonObj | None]) -> JsonObj:
        """Change a node: ``fn`` mutates the copy it gets or returns a new object (MODIFIED)."""
        return self.store.update(NODES, NODES.key(None, name), fn)

    def delete_node(self, name: str) -> JsonObj:
        """Delete a node at once (DELETED); returns its last state."""
        return self.store.delete(NODES, NODES.key(None, name))

    def add_pod(self, obj: JsonObj) -> JsonObj:
        """Create a pod (namespace "default" if unset) as given: no defaulting, no admission."""
        return self.store.create(PODS, obj)

    def modify_pod(self, namespace: str, name: str, fn: Callable[[JsonObj], JsonObj | None]) -> JsonObj:
        return self.store.update(PODS, PODS.key(namespace, name), fn)

    def delete_pod(self, namespace: str, name: str) -> JsonObj:
        """Delete a pod at once, as with ``--grace-period=0 --force``."""
        return self.store.delete(PODS, PODS.key(namespace, name))

    def add_synthetic_nodes(self, count: int, template_name: str = "node-00000") -> list[str]:
        """``count`` clones of a node named after the highest existing number (new uid,
        hostname label and address); one revision and ADDED event each. Returns the names."""
        return self.store.clone_nodes(count, template_name)

    def set_node_metrics(self, name: str, cpu: str, memory: str, timestamp: str | None = None) -> None:
        """What metrics-server reports for node ``name`` (and serve metrics.k8s.io)."""
        self.metrics_server = True
        stamp = timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.node_metrics[name] = {"timestamp": stamp, "usage": {"cpu": cpu, "memory": memory}}

    def _node_metrics(self, name: str | None) -> _Response:
        """NodeMetrics as metrics-server v0.6 answers: the node's labels, a creationTimestamp of
        now (the object is computed per request), ``window`` as a Go duration."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        nodes = self.store.snapshot(NODES)

        def item(node: str) -> JsonObj:
            labels = nodes.get(node, {}).get("metadata", {}).get("labels", {})
            metrics = self.node_metrics[node]
            return {
                "metadata": {"name": node, "creationTimestamp": now, "labels": labels},
                "timestamp": metrics["timestamp"],
                "window": "20.036s",
                "usage": metrics["usage"],
            }

        if name is not None:
            if name not in self.node_metrics:
                raise StatusError(404, "NotFound", f'nodemetrics.metrics.k8s.io "{name}" not found', details={})
            body = {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **item(name)}
        else:
            listed = [item(n) for n in sorted(self.node_metrics) if n in nodes]
            body = {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": listed}
        return _Response(200, go_json(body) + b"\n")

    # -- watch controls ----------------------------------------------------------------------

    @property
    def open_watches(self) -> int:
        with self.store.cond:
            return len(self.store.watches)

    def wait_for_watches(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Wait until at least ``count`` watch streams are open (a reflector has caught up)."""
        with self.store.cond:
            return self.store.cond.wait_for(lambda: len(self.store.watches) >= count, timeout)

    def bookmark(self) -> int:
        """Send a BOOKMARK at the current revision to every watch with allowWatchBookmarks."""
        return self.store.bookmark()

    def end_watches(self) -> int:
        """End every open watch cleanly (as at its timeoutSeconds); returns how many."""
        return self.store.end_watches()

    def drop_connections(self) -> int:
        """Reset every watch connection mid-stream (TCP RST); returns how many."""
        return self.store.drop_watches()

    def compact(self) -> int:
        """Compact at the current revision: older watches and continue tokens get 410s."""
        return self.store.compact()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        body: JsonObj | bytes | str | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``method`` ("*": any) whose path starts with
        ``path_prefix`` with ``status``: a Status body (or ``body``: a dict is sent as JSON,
        bytes/str as text/plain), and ``Retry-After`` if given. Checked before authentication."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, status, times, retry_after, body))

    def delay_next(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` before answering the next ``times`` requests under ``path_prefix``."""
        with self._lock:
            self._delays.append(_Delay(path_prefix, seconds, times))

    def clear_faults(self) -> None:
        """Forget the failures not injected yet."""
        with self._lock:
            self._faults.clear()

    def clear_delays(self) -> None:
        """Forget the delays not applied yet, and answer the requests being delayed now."""
        with self._lock:
            self._delays.clear()
            wake, self._wake = self._wake, threading.Event()
        wake.set()

    def _fault(self, method: str, path: str) -> _Response | None:
        with self._lock:
            fault = next(
                (f for f in self._faults if f.method in ("*", method) and path.startswith(f.path_prefix)), None
            )
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if isinstance(fault.body, (bytes, str)):
            text = fault.body.encode() if isinstance(fault.body, str) else fault.body
            return _Response(fault.status, text, "text/plain; charset=utf-8", headers)
        if fault.body is not None:
            return _Response(fault.status, go_json(fault.body) + b"\n", headers=headers)
        reason, message = _FAILURES.get(fault.status, ("", f"injected failure {fault.status}"))
        details = {"retryAfterSeconds": fault.retry_after} if fault.retry_after else None
        body = go_json(status_body(fault.status, reason, message, details=details)) + b"\n"
        return _Response(fault.status, body, headers=headers)

    def _delay(self, path: str) -> None:
        with self._lock:
            delay = next((d for d in self._delays if path.startswith(d.path_prefix)), None)
            if delay is None:
                return
            delay.times -= 1
            if delay.times <= 0:
                self._delays.remove(delay)
            wake = self._wake
        wake.wait(delay.seconds)

    def _authenticated(self, authorization: str, client_cert_cn: str | None) -> bool:
        """x509 or bearer token (the real authenticators' union); anonymous when no token."""
        token = self.token
        if token is None or client_cert_cn is not None:
            return True
        parts = authorization.split(" ")
        return len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1] == token


__all__ = ["FakeApiServer", "RecordedRequest", "TlsFiles", "TOO_MANY_REQUESTS_TEXT"]
