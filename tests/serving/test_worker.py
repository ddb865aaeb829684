"""The serving worker under slow, stuck, oversized and malformed clients (real gunicorn)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from benchmarks import payloads
from tests.conftest import fixture
from tests.live_server import Server, closed_by_peer, json_error, raw, read_response, read_responses, running_server

FILTER = fixture("kube-scheduler-v1.30", "full-nodes", "00001-filter-web-1")
HEAD = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def post(body: bytes, extra: bytes = b"") -> bytes:
    return HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shipped defaults (2 workers x 4 threads), but a 1 s read timeout and a 1 MiB body limit."""
    tmp = tmp_path_factory.mktemp("worker")
    with running_server(tmp, "--read-timeout", "1", "--max-body-bytes", str(1024 * 1024)) as running:
        yield running


def filter_answers(server: Server, session: requests.Session | None = None) -> None:
    """A normal filter request is answered, correctly, well before a stalled server would
    time it out (the 10 s is a hang detector, not a speed target)."""
    response = (session or requests).post(f"{server.url}/scheduler/filter", data=FILTER, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["Nodes"]["items"]) + len(response.json()["FailedAndUnresolvableNodes"]) == 8


def test_a_hundred_trickling_clients_do_not_stall_filter_requests(server: Server) -> None:
    # Each sends its headers and a byte of body now and then, as slowly as it can get away
    # with; before this worker, eight of them took every thread of the shipped 2 x 4.
    stop = threading.Event()
    trickled = 0

    def trickle() -> None:
        nonlocal trickled
        socks = [raw(server.port, HEAD + b"Content-Length: 100000\r\n\r\n{") for _ in range(100)]
        while not stop.wait(0.2):
            for i, sock in enumerate(socks):
                try:
                    sock.send(b" ")
                    trickled += 1
                except OSError:  # refused after the read timeout: open another in its place
                    sock.close()
                    socks[i] = raw(server.port, HEAD + b"Content-Length: 100000\r\n\r\n{")
        for sock in socks:
            sock.close()

    attacker = threading.Thread(target=trickle)
    attacker.start()
    try:
        time.sleep(0.5)
        session = requests.Session()  # kube-scheduler's keep-alive connection
        for _ in range(20):
            filter_answers(server, session)
            filter_answers(server)  # and fresh connections (a restarted scheduler, probes)
            time.sleep(0.05)
    finally:
        stop.set()
        attacker.join()
    assert trickled > 100
    assert "Traceback" not in server.log_text()


def test_a_request_that_does_not_arrive_in_time_gets_a_json_408(server: Server) -> None:
    sock = raw(server.port, HEAD + b"Content-Length: 100\r\n\r\n{")
    status, headers, body = read_response(sock)
    assert (status, headers["content-type"], headers["connection"]) == (408, "application/json", "close")
    assert json_error(body) == "the request did not arrive within 1 s (--read-timeout)"
    assert closed_by_peer(sock)


def test_a_connection_that_never_sends_a_request_is_closed_after_the_read_timeout(server: Server) -> None:
    sock = raw(server.port)
    assert closed_by_peer(sock, timeout=10)  # silently: no request, nothing to answer


def test_an_idle_keep_alive_connection_outlives_the_read_timeout(server: Server) -> None:
    sock = raw(server.port, post(FILTER))
    assert read_response(sock)[0] == 200
    time.sleep(1.5)  # longer than the read timeout, far shorter than the 100 s keep-alive
    sock.sendall(post(FILTER))
    assert read_response(sock)[0] == 200


def test_a_body_over_the_limit_is_refused_from_its_head(server: Server) -> None:
    # curl sends Expect: 100-continue for large bodies and waits: no body is ever sent.
    sock = raw(server.port, HEAD + b"Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
    status, _, body = read_response(sock)
    assert status == 413
    assert json_error(body) == (
        "request body too large (5000000 bytes): the limit is 1048576 bytes (--max-body-bytes / EXTENDER_MAX_BODY_BYTES)"
    )
    # A client that sends the body anyway (Go does) still reads the refusal, not a reset.
    sock = raw(server.port, HEAD + b"Content-Length: 2000000\r\n\r\n" + b" " * 500_000)
    assert read_response(sock)[0] == 413


def test_expect_100_continue_gets_continue_then_the_answer(server: Server) -> None:
    sock = raw(server.port, HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(FILTER))
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(FILTER)
    status, _, body = read_response(sock)
    assert status == 200 and b'"Nodes"' in body


def test_a_request_cut_short_gets_a_json_400(server: Server) -> None:
    sock = raw(server.port, post(FILTER)[:-100])
    sock.shutdown(socket.SHUT_WR)  # the client stops sending but still reads
    status, _, body = read_response(sock)
    assert status == 400
    assert json_error(body) == f"the request ended after {len(post(FILTER)) - 100} of {len(post(FILTER))} bytes: it was cut short"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request: Invalid HTTP request line: 'GARBAGE'"),
        (HEAD + b"Bad Header: x\r\n\r\n", 400, "malformed request: Invalid HTTP header name: 'Bad Header'"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, "malformed request: Request Line is too large (5014 > 4094)"),
        (HEAD + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n{", 400, "more than one Content-Length header"),
        (HEAD + b"Transfer-Encoding: zip\r\n\r\n", 501, "unsupported Transfer-Encoding 'zip'"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431, "malformed request: limit request headers fields"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431, "malformed request: limit request headers fields size"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         "malformed request: Invalid HTTP Header: 'TRANSFER-ENCODING'"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "malformed request: Invalid HTTP request line: 'PRI * HTTP/2.0'"),
    ],
)
def test_malformed_requests_get_json_errors_and_the_worker_lives_on(
    server: Server, data: bytes, status: int, message: str
) -> None:
    got, headers, body = read_response(raw(server.port, data))
    assert (got, headers["content-type"], json_error(body)) == (status, "application/json", message)
    filter_answers(server)


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    sock = raw(server.port, post(FILTER) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post(b"{"))
    (first, _, _), (status, _, body), (last, _, error) = read_responses(sock, 3)
    assert (first, status, body) == (200, 200, b'{"status":"ok"}')
    assert last == 400 and "not valid JSON" in json_error(error)


def test_requests_in_progress_are_bounded_per_worker(tmp_path: Path) -> None:
    # One worker holding at most 2 MiB: two stalled 900 KiB uploads fit, the third is refused.
    limits = ("--workers", "1", "--max-body-bytes", str(1024 * 1024), "--max-held-bytes", str(2 * 1024 * 1024))
    with running_server(tmp_path, *limits, "--read-timeout", "5") as server:
        stalled = [raw(server.port, HEAD + b"Content-Length: 1000000\r\n\r\n" + b" " * 900_000) for _ in range(2)]
        time.sleep(0.3)
        third = raw(server.port, HEAD + b"Content-Length: 1000000\r\n\r\n" + b" " * 900_000)
        status, _, body = read_response(third)
        assert status == 503 and "retry shortly" in json_error(body)
        for sock in stalled:
            sock.close()
        time.sleep(0.3)
        filter_answers(server)


def test_connections_over_the_limit_make_room_by_closing_the_oldest_idle_ones(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "1", "--threads", "2", "--max-connections", "10") as server:
        idle = []
        for _ in range(15):  # each sends one request, then idles as a keep-alive connection
            sock = raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
            idle.append(sock)
        filter_answers(server)  # a new client is still accepted and served
        assert sum(closed_by_peer(sock, timeout=0.5) for sock in idle) >= 6
        for sock in idle:
            sock.close()


def test_at_the_connection_limit_the_slowest_unfinished_requests_make_room(tmp_path: Path) -> None:
    # More trickling connections than the worker takes: it stays open to new clients by
    # dropping the request that has been arriving longest, not by refusing to accept.
    flags = ("--workers", "1", "--threads", "2", "--max-connections", "20", "--read-timeout", "30")
    with running_server(tmp_path, *flags) as server:
        tricklers = [raw(server.port, HEAD + b"Content-Length: 100000\r\n\r\n{") for _ in range(40)]
        time.sleep(0.5)
        filter_answers(server)
        status, _, body = read_response(tricklers[0])
        assert status == 503 and json_error(body) == "too many connections: the oldest unfinished request was dropped"
        assert not closed_by_peer(tricklers[-1], timeout=0.3), "the newest are kept"
        for sock in tricklers:
            sock.close()
        assert "dropped the oldest unfinished request" in server.log_text()


def test_a_client_that_does_not_read_its_response_holds_a_thread_only_for_the_write_timeout(tmp_path: Path) -> None:
    big = payloads.full_nodes(2000).body  # ~14 MB echoed back: far more than the socket buffers
    flags = ("--workers", "1", "--threads", "1", "--write-timeout", "1", "--max-body-bytes", str(64 * 1024 * 1024))
    with running_server(tmp_path, *flags) as server:
        readers = [raw(server.port, post(big)) for _ in range(3)]  # never read their answers
        for sock in readers:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        filter_answers(server)  # the one thread is freed after each 1 s write timeout
        for sock in readers:
            sock.close()
        assert "Traceback" not in server.log_text()
