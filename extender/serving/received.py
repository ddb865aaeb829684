"""A request already received whole, as gunicorn's parser reads requests: an unreader.

gunicorn's HTTP parser reads a request through an "unreader" (normally over the socket).
This one holds the head and the body the event loop received: the parser reads and
validates the head from it as usual, and :func:`extender.web.body.read_body` takes the body
through ``take_buffered()`` as the very buffer it arrived in, without a copy.
"""

from __future__ import annotations

import io
from collections import deque

from gunicorn.http.unreader import Unreader

Buffer = bytes | bytearray | memoryview


class ReceivedRequest(Unreader):  # type: ignore[misc]
    """The head, then the body, then end of input (a connection's next request is framed
    and received separately)."""

    def __init__(self, head: bytes, body: Buffer) -> None:
        super().__init__()
        self.buf: io.BytesIO = io.BytesIO()  # what the parser gave back with unread()
        self._parts: deque[Buffer] = deque(part for part in (head, body) if len(part))

    def chunk(self, size_hint: int | None = None) -> bytes:
        """The next part, whole (the parser reads the head in one piece)."""
        if not self._parts:
            return b""
        part = self._parts.popleft()
        return part if isinstance(part, bytes) else bytes(part)

    def take_buffered(self) -> Buffer:
        """Everything not yet read: the body itself when nothing of it was read."""
        held = self.buf.getvalue()
        self.buf = io.BytesIO()
        parts = list(self._parts)
        self._parts.clear()
        if not held and len(parts) == 1:
            return parts[0]
        return b"".join([held, *parts])
