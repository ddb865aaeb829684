"""Reading the request body in one go, with the size limit enforced first.

The serving worker (:mod:`extender.serving.worker`) receives every request whole before a
thread handles it, so the body is already in memory, in the buffer it was received into:
it is taken as it is, without a copy (a 7 MB full-node body would otherwise be copied once
more by gunicorn's reader and again, in 64 KiB steps, by Werkzeug's). Under another gunicorn
worker the rest of the body is read through gunicorn's reader in one call.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

try:
    from gunicorn.http.body import LengthReader
except ImportError:  # pragma: no cover - gunicorn is a dependency; keep the app importable without it
    LengthReader = None

Body = bytes | bytearray | memoryview


class BodyTooLarge(RequestEntityTooLarge):
    pass


def read_body(request: Request, limit: int) -> Body:
    """The whole body; 413 if it exceeds ``limit``, 400 if it is cut short."""
    length = request.content_length
    if length is None:
        # No Content-Length (chunked): let Werkzeug enforce the limit while reading.
        request.max_content_length = limit
        try:
            return request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise BodyTooLarge(_too_large(limit)) from None
    if length > limit:
        raise BodyTooLarge(_too_large(limit, length))
    stream: Any = request.environ["wsgi.input"]
    reader = getattr(stream, "reader", None)
    if LengthReader is not None and isinstance(reader, LengthReader) and reader.length == length:
        data = _take(reader, length)
    else:
        data = stream.read(length)
    if len(data) != length:
        raise BadRequest(f"request body ended after {len(data)} of {length} bytes (Content-Length)")
    return data


def _take(reader: Any, length: int) -> Body:
    """``length`` bytes from gunicorn's reader: what its unreader holds (all of it, under our
    worker), then anything still to come from the socket."""
    unreader: Any = reader.unreader
    take_buffered = getattr(unreader, "take_buffered", None)
    if take_buffered is None:
        return bytes(reader.read(length))
    held: Body = take_buffered()
    if len(held) >= length:
        if len(held) > length:  # pipelined bytes of the next request: give them back
            unreader.unread(bytes(held[length:]))
            held = held[:length]
        reader.length = 0  # tell gunicorn the body has been consumed
        return held
    reader.length -= len(held)
    return b"".join([held, reader.read(reader.length)])


def _too_large(limit: int, length: int | None = None) -> str:
    got = f" ({length} bytes)" if length is not None else ""
    return f"request body too large{got}: the limit is {limit} bytes (--max-body-bytes / EXTENDER_MAX_BODY_BYTES)"
