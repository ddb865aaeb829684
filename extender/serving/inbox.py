"""Receiving one whole request at a time from a non-blocking socket, into memory.

:class:`Inbox` is what the worker's event loop calls when a connection is readable: it takes
what the socket has (never waiting), finds where the request ends (:mod:`.framing`), and says
when the request is complete. A body over ``LARGE_BODY`` bytes is received straight into
an anonymous memory map of its declared length: pages are committed only as bytes arrive
(a header claiming 128 MiB costs nothing until they do), nothing is copied again, and the
map is returned to the system as soon as the request is done with it.
"""

from __future__ import annotations

import mmap
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from extender.serving.framing import ChunkedBody, FramingError, Head, find_head

#: bodies larger than this are received into their own memory map
LARGE_BODY = 256 * 1024
#: one recv() asks for at most this much (the kernel rarely has more ready)
RECV_SIZE = 256 * 1024

Buffer = bytes | bytearray | memoryview


class Readable(Protocol):
    """The socket calls an inbox makes (plain or TLS, non-blocking)."""

    def recv_into(self, buffer: memoryview, nbytes: int = ...) -> int: ...


class Progress(Enum):
    """What a call to :meth:`Inbox.receive` got to."""

    #: the socket has nothing more for now; wait until it is readable
    WAITING = "waiting"
    #: stopped after ``budget`` bytes with the socket still readable: call again soon
    BUDGET = "budget"
    #: a whole request is in; take it with :meth:`Inbox.take`
    COMPLETE = "complete"
    #: the peer closed its side
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Request:
    """A request received whole: its head (request line and headers) and its body."""

    head: bytes
    body: Buffer


class Inbox:
    """The bytes of a connection's next request, and of any request pipelined behind it."""

    def __init__(
        self, *, head_limit: int, body_limit: int, on_bytes: Callable[[int], None], scratch: bytearray | None = None
    ) -> None:
        self.head_limit = head_limit
        self.body_limit = body_limit
        #: what recv() reads into before the bytes are appended: one per event loop (the
        #: worker shares its own between its connections), never used by two threads at once
        self._scratch = memoryview(scratch if scratch is not None else bytearray(RECV_SIZE))
        #: told how many bytes arrive, so the worker can bound what all connections hold
        self._on_bytes = on_bytes
        self._data = bytearray()
        self._head: Head | None = None
        self._chunked: ChunkedBody | None = None
        #: a large body's own buffer, and how much of it has arrived
        self._body: mmap.mmap | None = None
        self._body_received = 0
        self._end: int | None = None
        self.continue_due = False

    @property
    def started(self) -> bool:
        """Whether any byte of the next request has arrived."""
        return bool(self._data) or self._body is not None

    @property
    def received(self) -> int:
        """Bytes of the next request held so far (what the worker counts against its budget)."""
        return len(self._data) + self._body_received

    @property
    def expected(self) -> int | None:
        """The whole request's length, once its head says so."""
        if self._head is None or self._head.content_length is None:
            return None
        return self._head.end + self._head.content_length

    def receive(self, sock: Readable, budget: int) -> Progress:
        """Take what ``sock`` has, up to ``budget`` bytes; raises :class:`FramingError`."""
        if self._end is not None:
            return Progress.COMPLETE
        taken = 0
        scratch = self._scratch
        while taken < budget:
            try:
                if self._body is not None:
                    view = memoryview(self._body)[self._body_received :]
                    count = sock.recv_into(view, min(len(view), budget - taken))
                    view.release()
                    self._body_received += count
                else:
                    count = sock.recv_into(scratch, min(len(scratch), budget - taken))
                    self._data += scratch[:count]
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return Progress.WAITING
            if count == 0:
                return Progress.CLOSED
            taken += count
            self._on_bytes(count)
            if self._advance():
                return Progress.COMPLETE
            if self._body is None and self._head is not None and self._wants_own_buffer():
                self._move_body_to_map()
        return Progress.BUDGET

    def restart(self) -> Progress:
        """Frame what is already held (bytes pipelined behind the last request)."""
        return Progress.COMPLETE if self._data and self._advance() else Progress.WAITING

    def _advance(self) -> bool:
        """Update the framing with the new bytes; True once the request is complete."""
        if self._head is None:
            self._head = find_head(self._data, self.head_limit)
            if self._head is None:
                return False
            length = self._head.content_length
            if length is not None and length > self.body_limit:
                raise FramingError(413, f"request body too large ({length} bytes): the limit is {self.body_limit} bytes"
                                   " (--max-body-bytes / EXTENDER_MAX_BODY_BYTES)")
            if length is None:
                self._chunked = ChunkedBody(self._head.end)
            self.continue_due = self._head.expects_continue
        if self._body is not None:
            done = self._body_received == len(self._body)
            if done:
                self._end = self._head.end
            return done
        if self._chunked is not None:
            if len(self._data) - self._head.end > self.body_limit:
                raise FramingError(413, f"request body too large: the limit is {self.body_limit} bytes"
                                   " (--max-body-bytes / EXTENDER_MAX_BODY_BYTES)")
            self._end = self._chunked.end(self._data)
        else:
            expected = self.expected
            assert expected is not None
            if len(self._data) >= expected:
                self._end = expected
        if self._end is not None:
            self.continue_due = False
        return self._end is not None

    def _wants_own_buffer(self) -> bool:
        expected = self.expected
        return expected is not None and expected - self._head.end > LARGE_BODY and len(self._data) < expected  # type: ignore[union-attr]

    def _move_body_to_map(self) -> None:
        head = self._head
        assert head is not None and head.content_length is not None
        self._body = mmap.mmap(-1, head.content_length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        early = self._data[head.end :]
        self._body[: len(early)] = early
        self._body_received = len(early)
        del self._data[head.end :]

    def take(self) -> Request:
        """The complete request; the inbox then holds only what was pipelined behind it."""
        head, end = self._head, self._end
        assert head is not None and end is not None, "take() before the request is complete"
        if self._body is not None:
            request = Request(bytes(self._data[: head.end]), memoryview(self._body))
            self._data.clear()
        else:
            request = Request(bytes(self._data[: head.end]), bytes(self._data[head.end : end]))
            del self._data[:end]
        self._head = self._chunked = self._body = self._end = None
        self._body_received = 0
        self.continue_due = False
        return request
