"""The verb fast path: which requests it takes, agreement with gunicorn's parser on those, and
the same answers as the full gunicorn + Flask path from a real server."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.serving.fastpath import FastCall, match, response
from tests.conftest import fixture_id, make_app, request_line, scheduler_fixtures, verb_of
from tests.live_server import closed_by_peer, raw, read_response, running_server

PATHS = {(b"POST", f"/scheduler/{verb}".encode()): verb for verb in ("filter", "prioritize", "preempt", "bind")}
PATHS.update({(b"GET", b"/healthz"): "healthz", (b"GET", b"/readyz"): "readyz"})


def recorded_head(path: Path) -> bytes:
    """The head kube-scheduler sent for a recording: its request line (HTTP/1.1, as Go's
    client writes it) and its recorded header lines, Content-Length that of the stored body."""
    lines = path.with_name(path.name.replace(".request.json", ".headers.txt")).read_text().splitlines()
    length = len(path.read_bytes())
    fields = [f"Content-Length: {length}" if line.lower().startswith("content-length:") else line for line in lines[1:]]
    return (f"{lines[0]} HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in fields if line) + "\r\n").encode()


@pytest.mark.parametrize("path", scheduler_fixtures(), ids=fixture_id)
def test_every_recorded_kube_scheduler_request_takes_the_fast_path(path: Path) -> None:
    assert match(recorded_head(path), PATHS) == FastCall(verb_of(path), "application/json", keep_alive=True)


HEAD = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /scheduler/filter HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"post /scheduler/filter HTTP/1.1\r\n\r\n",
        b"POST /scheduler/filter?x=1 HTTP/1.1\r\n\r\n",
        b"POST /scheduler/filter/ HTTP/1.1\r\n\r\n",
        b"POST /scheduler/fil%74er HTTP/1.1\r\n\r\n",
        b"POST /scheduler/unknown HTTP/1.1\r\n\r\n",
        b"POST http://x/scheduler/filter HTTP/1.1\r\n\r\n",
        b"POST /scheduler/filter HTTP/1.0\r\n\r\n",
        b"POST  /scheduler/filter HTTP/1.1\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
        HEAD + b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
        HEAD + b"Connection: close, foo\r\n\r\n",
        HEAD + b"Connection: keep-alive\r\nConnection: close\r\n\r\n",
        HEAD + b"Expect: something\r\n\r\n",
        HEAD + b"Host: y\r\n\r\n",
        HEAD + b"X-Forwarded-Proto: https\r\n\r\n",
        HEAD + b"Content-Type: application/json\r\nContent-Type: text/plain\r\n\r\n",
        HEAD + b"X-Folded: a\r\n b\r\n\r\n",
        HEAD + b"Bad Name: a\r\n\r\n",
        HEAD + b"X-Latin: caf\xe9\r\n\r\n",
        HEAD + b"X-Nul: a\x00b\r\n\r\n",
        HEAD + b"NoColon\r\n\r\n",
        HEAD + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n",
        HEAD + b"".join(b"X-%d: a\r\n" % i for i in range(101)) + b"\r\n",
        HEAD,  # not a whole head
    ],
)
def test_anything_unusual_goes_the_full_way(head: bytes) -> None:
    assert match(head, PATHS) is None


def test_kubelets_probes_take_the_fast_path() -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8888\r\nUser-Agent: kube-probe/1.30\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    assert match(head, PATHS) == FastCall("healthz", None, keep_alive=False)
    assert match(head.replace(b"/healthz", b"/readyz"), PATHS) == FastCall("readyz", None, keep_alive=False)


def test_connection_close_and_content_type_are_read() -> None:
    call = match(HEAD + b"connection: Close\r\ncontent-type:  text/plain; charset=x  \r\n\r\n", PATHS)
    assert call == FastCall("filter", "text/plain; charset=x", keep_alive=False)
    assert match(HEAD + b"Connection: keep-alive\r\n\r\n", PATHS) == FastCall("filter", None, keep_alive=True)


def test_the_response_head_is_what_gunicorn_writes() -> None:
    data = response(400, b'{"error":"x"}', keep_alive=False)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert [line.split(":")[0] for line in lines[1:]] == ["Server", "Date", "Connection", "Content-Type", "Content-Length"]
    assert "Connection: close" in lines and "Content-Length: 13" in lines and body == b'{"error":"x"}'


# -- agreement with gunicorn's parser ---------------------------------------------------------

_names = st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE", "Connection", "connection", "Host",
                          "User-Agent", "Accept-Encoding", "X-A", "x_b", "Content-Length", "Expect", "Keep-Alive",
                          "Forwarded", "X-Forwarded-Proto", "X-Forwarded-SSL", "Upgrade", "Transfer-Encoding"])
_values = st.one_of(
    st.sampled_from(["application/json", "close", "keep-alive", "Close, foo", "keep-alive, close", "upgrade",
                     "application/json; charset=utf-8", "", "gzip", "100-continue", "0"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
_space = st.sampled_from(["", " ", "  ", "\t", " \t"])
_fields = st.lists(st.tuples(_names, _space, _values, _space), max_size=8)
_lines = st.sampled_from(["POST /scheduler/filter HTTP/1.1", "POST /scheduler/prioritize HTTP/1.1",
                          "POST /scheduler/bind HTTP/1.1", "POST /scheduler/filter HTTP/1.0", "PUT /scheduler/filter HTTP/1.1",
                          "GET /healthz HTTP/1.1", "GET /readyz HTTP/1.0"])


@settings(max_examples=400, deadline=None)
@given(line=_lines, fields=_fields)
def test_what_the_fast_path_takes_gunicorn_reads_the_same_way(line: str, fields: list[tuple[str, str, str, str]]) -> None:
    # Content-Length is the framing's business (done before either parser sees the head):
    # give every head one, so gunicorn reads it as the worker would hand it over.
    fields = [f for f in fields if f[0].lower() != "content-length"] + [("Content-Length", "", "0", "")]
    head = (line + "\r\n" + "".join(f"{n}:{a}{v}{b}\r\n" for n, a, v, b in fields) + "\r\n").encode()
    call = match(head, PATHS)
    if call is None:
        return
    req = next(RequestParser(Config(), iter([head]), ("127.0.0.1", 1)))
    assert (req.method, req.path, req.query, req.version) == (*line.split()[:2], "", (1, 1))
    content_types = [v for n, v in req.headers if n == "CONTENT-TYPE"]
    assert call.content_type == (content_types[0] if content_types else None)
    assert call.keep_alive == (not req.should_close())


# -- a real server ----------------------------------------------------------------------------


def test_a_real_server_answers_every_recording_as_the_flask_app_does(tmp_path: Path) -> None:
    """Every recorded request, as kube-scheduler sent it, on one keep-alive connection: the
    same status and body as the Flask app gives, with gunicorn's headers."""
    paths = [p for p in scheduler_fixtures() if verb_of(p) in ("filter", "prioritize")]
    client = make_app(None).test_client()
    with running_server(tmp_path) as server:
        sock = raw(server.port)
        for path in paths:
            body = path.read_bytes()
            sock.sendall(recorded_head(path).replace(b"Host: 127.0.0.1:18888", b"Host: x") + body)
            status, headers, answer = read_response(sock)
            expected = client.post(request_line(path)[1], data=body, headers={"Content-Type": "application/json"})
            assert (status, answer) == (expected.status_code, expected.data), path.name
            assert {k.lower(): v for k, v in headers.items() if k.lower() != "date"} == {
                "server": "gunicorn", "connection": "keep-alive", "content-type": "application/json",
                "content-length": str(len(answer)),
            }
        sock.close()


def test_probes_are_answered_as_the_flask_app_answers_them_on_both_ports(tmp_path: Path) -> None:
    from benchmarks.service import free_port

    probe_port = free_port()
    with running_server(tmp_path, "--probe-port", str(probe_port)) as server:
        for port in (server.port, probe_port):
            for path in ("/healthz", "/readyz"):
                sock = raw(port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
                status, headers, answer = read_response(sock)
                expected = make_app(None).test_client().get(path)
                assert (status, json.loads(answer)) == (expected.status_code, expected.json), (port, path)
                assert headers["connection"] == "close" and closed_by_peer(sock)
        # the probe port serves the probes only, a verb there goes the full way to its 404
        sock = raw(probe_port, b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert read_response(sock)[0] == 404


def test_a_reply_the_client_reads_slowly_is_finished_by_a_thread_and_the_connection_kept(tmp_path: Path) -> None:
    # 5000 names without a node cache: every name unknown, a ~200 KB prioritize answer that a
    # client with a 4 KiB receive buffer cannot take at once, so the event loop's write stops
    # short and a thread writes the rest.
    names = ",".join(f'"node-{i:05d}"' for i in range(5000))
    body = b'{"Pod":{"metadata":{"name":"p","namespace":"default","uid":"u"},"spec":{}},"NodeNames":[%s]}' % names.encode()
    with running_server(tmp_path) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"POST /scheduler/prioritize HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        for _ in range(2):
            sock.sendall(request)
            time.sleep(0.3)  # not reading: the server's socket buffer fills
            status, headers, answer = read_response(sock)
            assert status == 200 and headers["connection"] == "keep-alive"
            assert answer.count(b'"Score":0') == 5000
        sock.close()
        assert "Traceback" not in server.log_text()


def test_probes_and_names_mode_calls_are_answered_while_every_thread_is_held(tmp_path: Path) -> None:
    # The one thread writes a ~14 MB full-node answer to a client that does not read it (held
    # for the 10 s write timeout); the event loop still answers probes and small verb calls.
    from benchmarks import payloads

    big = payloads.full_nodes(2000).body
    flags = ("--workers", "1", "--threads", "1", "--max-body-bytes", str(64 * 1024 * 1024))
    with running_server(tmp_path, *flags) as server:
        stuck = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        time.sleep(1.0)  # the thread has the request and is blocked writing its answer
        started = time.monotonic()
        sock = raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        body = b'{"Pod":{"metadata":{"name":"p","namespace":"d","uid":"u"}},"NodeNames":["a"]}'
        sock.sendall(b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        status, _, answer = read_response(sock)
        assert status == 200 and list(json.loads(answer)["FailedAndUnresolvableNodes"]) == ["a"]  # no node cache
        # a hang detector, not a speed target: a thread would be free only after the 10 s write timeout
        assert time.monotonic() - started < 5, "answered while the thread was still held"
        sock.close()
        stuck.close()
