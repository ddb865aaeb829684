"""Receiving a request whole from a non-blocking socket (real socket pairs)."""

from __future__ import annotations

import mmap
import socket
from collections.abc import Iterator

import pytest

from extender.serving.framing import FramingError
from extender.serving.inbox import LARGE_BODY, Inbox, Progress


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(False)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    yield server, client
    server.close()
    client.close()


def inbox(held: list[int] | None = None, body_limit: int = 64 * 1024 * 1024) -> Inbox:
    sink = held if held is not None else []
    return Inbox(head_limit=16 * 1024, body_limit=body_limit, on_bytes=sink.append)


def post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_request_arriving_in_pieces_is_complete_only_at_its_last_byte(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box, data = inbox(), post(b'{"Pod": {}}')
    assert box.receive(server, 1 << 20) is Progress.WAITING and not box.started
    for i in range(len(data) - 1):
        client.send(data[i : i + 1])
        assert box.receive(server, 1 << 20) is Progress.WAITING
    assert box.started and box.expected == len(data)
    client.send(data[-1:])
    assert box.receive(server, 1 << 20) is Progress.COMPLETE
    request = box.take()
    assert request.head + request.body == data and request.body == b'{"Pod": {}}'
    assert not box.started


def test_a_large_body_goes_into_its_own_memory_map_and_is_never_copied_again(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    held: list[int] = []
    box, body = inbox(held), bytes(range(256)) * (4 * LARGE_BODY // 256)
    client.sendall(post(body)[:100_000])
    assert box.receive(server, 1 << 30) is Progress.WAITING
    assert box._body is not None and len(box._body) == len(body)  # the declared length, committed lazily
    client.sendall(post(body)[100_000:])
    while (progress := box.receive(server, 1 << 30)) is not Progress.COMPLETE:
        assert progress is Progress.WAITING
    request = box.take()
    assert isinstance(request.body, memoryview) and isinstance(request.body.obj, mmap.mmap)
    assert request.body == body
    assert sum(held) == len(post(body)), "every byte is counted once against the worker's budget"


def test_receive_stops_at_its_budget_so_other_connections_get_their_turn(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box = inbox()
    client.sendall(post(b"x" * 100_000))
    assert box.receive(server, 10_000) is Progress.BUDGET
    assert 10_000 <= box.received < 100_000
    while box.receive(server, 10_000) is Progress.BUDGET:
        pass
    assert box.take().body == b"x" * 100_000


def test_pipelined_requests_are_framed_one_after_the_other(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box = inbox()
    client.sendall(post(b"[1]") + post(b"[2]") + b"GET /hea")
    assert box.receive(server, 1 << 20) is Progress.COMPLETE
    assert box.take().body == b"[1]"
    assert box.restart() is Progress.COMPLETE
    assert box.take().body == b"[2]"
    assert box.restart() is Progress.WAITING and box.started  # the start of a third
    client.sendall(b"lthz HTTP/1.1\r\n\r\n")
    assert box.receive(server, 1 << 20) is Progress.COMPLETE
    assert box.take().head.startswith(b"GET /healthz")


def test_a_peer_closing_mid_request_is_seen(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box = inbox()
    client.sendall(post(b"x" * 50)[:-10])
    client.shutdown(socket.SHUT_WR)
    assert box.receive(server, 1 << 20) is Progress.CLOSED
    assert box.started and box.received == len(post(b"x" * 50)) - 10


def test_a_body_over_the_limit_is_refused_from_its_head_before_any_of_it_is_held(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    box = inbox(body_limit=1000)
    client.sendall(b"POST / HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n")
    with pytest.raises(FramingError, match=r"request body too large \(5000000 bytes\): the limit is 1000 bytes") as caught:
        box.receive(server, 1 << 20)
    assert caught.value.status == 413


def test_a_chunked_body_over_the_limit_is_refused_as_it_grows(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box = inbox(body_limit=1000)
    client.sendall(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n")
    with pytest.raises(FramingError, match="request body too large") as caught:
        box.receive(server, 1 << 20)
    assert caught.value.status == 413


def test_continue_is_due_only_while_the_body_is_awaited(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    box = inbox()
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    client.sendall(head)
    assert box.receive(server, 1 << 20) is Progress.WAITING and box.continue_due
    client.sendall(b"{}")
    assert box.receive(server, 1 << 20) is Progress.COMPLETE and not box.continue_due
