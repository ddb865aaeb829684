"""Where an HTTP/1.1 request ends, from the bytes received so far (RFC 9112 §6.3).

The worker receives each request whole in its event loop before a thread handles it, so it
must know when the request is complete: the head ends at the first empty line, the body
after ``Content-Length`` bytes or at the last chunk of a ``chunked`` body. Only framing is
read here; gunicorn's parser still validates the request line and every header when the
request is handled. A framing header this module cannot read unambiguously is an error
here too, so the two never disagree about where a request ends (request smuggling).
"""

from __future__ import annotations

from dataclasses import dataclass

#: CRLF after the chunk data, and the shortest last chunk ("0" CRLF CRLF)
_CRLF = b"\r\n"
#: longest chunk-size line (size and extensions), as gunicorn's limit_request_field_size
MAX_CHUNK_LINE = 8190
#: longest trailer section of a chunked body
MAX_TRAILERS = 32 * 1024


class FramingError(Exception):
    """The request cannot be framed; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Head:
    """The framing facts of one request head."""

    #: offset just past the empty line that ends the head
    end: int
    #: the declared body length, or None for a chunked body
    content_length: int | None
    #: the client waits for "100 Continue" before it sends the body
    expects_continue: bool

    @property
    def chunked(self) -> bool:
        return self.content_length is None


def find_head(data: bytes | bytearray, limit: int) -> Head | None:
    """The head of the request at the start of ``data``, or None if it is not complete yet.

    Raises :class:`FramingError` if the head is longer than ``limit`` bytes (431), uses bare
    LF line ends, or has framing headers that are missing, repeated or contradictory (400),
    or a transfer coding other than chunked (501).
    """
    start = 2 if data[:2] == _CRLF else 0  # RFC 9112 §2.2: one empty line before the request may be ignored
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if len(data) > limit:
            raise FramingError(431, f"request head larger than {limit} bytes")
        if data.count(b"\n") != data.count(b"\r\n"):
            raise FramingError(400, "bare LF in the request head: lines must end with CRLF")
        return None
    if end + 4 > limit:
        raise FramingError(431, f"request head larger than {limit} bytes")
    lines = bytes(data[start:end]).split(_CRLF)
    if any(b"\n" in line or b"\r" in line for line in lines):
        raise FramingError(400, "bare CR or LF in the request head: lines must end with CRLF")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects_continue = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # gunicorn rejects it when it parses the head
        name = name.lower()
        if name == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name == b"transfer-encoding":
            codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
        elif name == b"expect":
            expects_continue = value.strip(b" \t").lower() == b"100-continue"
    if codings:
        if lengths:
            raise FramingError(400, "both Content-Length and Transfer-Encoding: the body's end is ambiguous")
        if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            if all(c in (b"chunked", b"identity", b"gzip", b"deflate", b"compress") for c in codings):
                raise FramingError(400, "Transfer-Encoding must end with a single chunked")
            raise FramingError(501, f"unsupported Transfer-Encoding {b', '.join(codings).decode('latin-1')!r}")
        return Head(end + 4, None, expects_continue)
    if len(lengths) > 1:
        raise FramingError(400, "more than one Content-Length header")
    if lengths and not lengths[0].isdigit():
        raise FramingError(400, f"Content-Length {lengths[0].decode('latin-1')!r} is not a number")
    return Head(end + 4, int(lengths[0]) if lengths else 0, expects_continue)


class ChunkedBody:
    """Finds the end of a chunked body as its bytes arrive; each byte is scanned once."""

    def __init__(self, start: int) -> None:
        #: offset of the next chunk-size line, or of the trailers after the last chunk
        self._at = start
        self._last_chunk = False

    def end(self, data: bytes | bytearray) -> int | None:
        """Offset just past the body in ``data``, or None while it is incomplete.

        Raises :class:`FramingError` (400) on a malformed chunk size, a chunk not followed
        by CRLF, or an overlong chunk-size line or trailer section.
        """
        while not self._last_chunk:
            line_end = data.find(_CRLF, self._at, self._at + MAX_CHUNK_LINE + 2)
            if line_end < 0:
                if len(data) - self._at > MAX_CHUNK_LINE:
                    raise FramingError(400, f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
                return None
            size_text = bytes(data[self._at : line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise FramingError(400, f"invalid chunk size {size_text[:32].decode('latin-1')!r}")
            size = int(size_text, 16)
            if size == 0:
                self._at, self._last_chunk = line_end + 2, True
                break
            data_end = line_end + 2 + size
            if len(data) < data_end + 2:
                return None  # rescanning this short line later is cheaper than keeping state
            if data[data_end : data_end + 2] != _CRLF:
                raise FramingError(400, "chunk data not followed by CRLF")
            self._at = data_end + 2
        if data[self._at : self._at + 2] == _CRLF:  # no trailers
            return self._at + 2
        trailers_end = data.find(b"\r\n\r\n", self._at, self._at + MAX_TRAILERS + 4)
        if trailers_end < 0:
            if len(data) - self._at > MAX_TRAILERS:
                raise FramingError(400, f"chunked trailers longer than {MAX_TRAILERS} bytes")
            return None
        return trailers_end + 4
