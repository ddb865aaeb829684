"""Finding where a request ends: unit cases, and agreement with gunicorn's own parser."""

from __future__ import annotations

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.serving.framing import ChunkedBody, FramingError, Head, find_head

LIMIT = 64 * 1024


def frame(data: bytes) -> int | None:
    """The offset just past the first request in ``data``, or None if it is incomplete."""
    head = find_head(data, LIMIT)
    if head is None:
        return None
    if head.chunked:
        return ChunkedBody(head.end).end(data)
    assert head.content_length is not None
    end = head.end + head.content_length
    return end if len(data) >= end else None


def request(body: bytes = b"", *, chunks: list[bytes] | None = None, extra: str = "") -> bytes:
    if chunks is not None:
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
        return f"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\n{extra}Transfer-Encoding: chunked\r\n\r\n".encode() + encoded
    return f"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_a_head_is_complete_at_its_empty_line() -> None:
    data = request(b'{"a": 1}')
    assert find_head(data[:20], LIMIT) is None
    head = find_head(data, LIMIT)
    assert head == Head(end=len(data) - 8, content_length=8, expects_continue=False)
    assert frame(data) == len(data) and frame(data[:-1]) is None


def test_no_length_means_no_body_and_one_leading_empty_line_is_allowed() -> None:
    data = b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz"
    assert frame(data) == data.index(b"GET /readyz")


def test_expect_100_continue_is_noticed() -> None:
    head = find_head(request(b"{}", extra="Expect: 100-Continue\r\n"), LIMIT)
    assert head is not None and head.expects_continue


def test_chunked_bodies_end_after_the_last_chunk_and_trailers() -> None:
    data = request(chunks=[b"hello", b"", b" world" * 100])
    assert frame(data) == len(data)
    for cut in range(len(data)):
        assert frame(data[:cut]) is None, cut
    with_trailers = data[:-2] + b"X-Checksum: 1\r\n\r\nNEXT"
    assert frame(with_trailers) == len(with_trailers) - 4


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400, "more than one Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "is not a number"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "is not a number"),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "ambiguous"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "must end with a single chunked"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, "single chunked"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: rot13\r\n\r\n", 501, "unsupported Transfer-Encoding 'rot13'"),
        (b"POST / HTTP/1.1\nHost: x\n\n", 400, "bare LF"),
        (b"POST / HTTP/1.1\r\nHost: x\nY: z\r\n\r\n", 400, "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * LIMIT, 431, "request head larger than 65536 bytes"),
    ],
)
def test_framing_that_cannot_be_read_unambiguously_is_refused(data: bytes, status: int, message: str) -> None:
    with pytest.raises(FramingError, match=message) as caught:
        frame(data)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "invalid chunk size 'zz'"),
        (b"5\r\nhelloXX0\r\n\r\n", "chunk data not followed by CRLF"),
        (b"5;" + b"e" * 9000, "chunk-size line longer than 8190 bytes"),
        (b"\r\n", "invalid chunk size ''"),
    ],
)
def test_malformed_chunks_are_refused(body: bytes, message: str) -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    with pytest.raises(FramingError, match=message) as caught:
        frame(data)
    assert caught.value.status == 400


def _gunicorn_consumes(data: bytes) -> int:
    """How many bytes gunicorn's parser takes for the first request in ``data``."""
    parser = RequestParser(Config(), iter([data]), ("127.0.0.1", 1))
    req = next(parser)
    while req.body.read(8192):
        pass
    return len(data) - len(parser.unreader.read())


requests_ = st.one_of(
    st.binary(max_size=3000).map(lambda b: request(b)),
    st.lists(st.binary(max_size=700), max_size=6).map(lambda c: request(chunks=c)),
    st.lists(st.binary(min_size=1, max_size=300), max_size=4).map(
        lambda c: request(chunks=c)[:-2] + b"X-Trailer: t\r\n\r\n"
    ),
)


@settings(max_examples=300, deadline=None)
@given(first=requests_, second=requests_, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=5))
def test_framing_agrees_with_gunicorns_parser_however_the_bytes_arrive(
    first: bytes, second: bytes, cuts: list[int]
) -> None:
    data = first + second
    assert _gunicorn_consumes(data) == len(first), "the generator made a request gunicorn reads otherwise"
    # Bytes arrive in arbitrary pieces: the end is unknown before the whole first request
    # is in and exact once it is, scanning incrementally with one ChunkedBody per request.
    head: Head | None = None
    chunked: ChunkedBody | None = None
    end: int | None = None
    for cut in sorted({min(c, len(data)) for c in cuts} | {len(data)}):
        received = data[:cut]
        if head is None:
            head = find_head(received, LIMIT)
            if head is not None and head.chunked:
                chunked = ChunkedBody(head.end)
        if head is not None:
            if chunked is not None:
                end = chunked.end(received)
            elif head.content_length is not None and cut >= head.end + head.content_length:
                end = head.end + head.content_length
        if cut < len(first):
            assert end is None
        if end is not None:
            break
    assert end == len(first)
