"""Reading the request body in one call, with the size limit enforced.

Werkzeug's stream reads in 64 KiB steps on top of gunicorn's own buffering; for a 7 MB
full-node request that cost as much as decoding it (python-stack.md §5.3: 9 ms vs 2 ms).
With gunicorn we ask its LengthReader for the whole body at once.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

try:
    from gunicorn.http.body import LengthReader
except ImportError:  # pragma: no cover - gunicorn is a dependency; keep the app importable without it
    LengthReader = None


class BodyTooLarge(RequestEntityTooLarge):
    pass


def read_body(request: Request, limit: int) -> bytes:
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
    if LengthReader is not None and isinstance(reader, LengthReader):
        try:
            data = reader.read(length)
        except Exception:
            stream.failed = True  # gunicorn must not reuse a connection whose body broke off
            raise
    else:
        data = stream.read(length)
    if len(data) != length:
        raise BadRequest(f"request body ended after {len(data)} of {length} bytes (Content-Length)")
    return bytes(data)


def _too_large(limit: int, length: int | None = None) -> str:
    got = f" ({length} bytes)" if length is not None else ""
    return f"request body too large{got}: the limit is {limit} bytes (--max-body-bytes / EXTENDER_MAX_BODY_BYTES)"
