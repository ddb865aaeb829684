"""A client connection of the serving worker, and the limits it is held to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn

from extender.serving.fastpath import FastCall
from extender.serving.inbox import Inbox, Request
from extender.settings import Settings


@dataclass(frozen=True)
class Limits:
    """What one worker allows its clients (see the module docstring)."""

    read_timeout: float
    write_timeout: float
    max_body_bytes: int
    max_held_bytes: int
    head_limit: int
    #: the plain-HTTP listener for kubelet probes (0: none)
    probe_port: int = 0
    #: the plain-HTTP listener for the status page (0: none)
    admin_port: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, head_limit: int) -> Limits:
        return cls(
            read_timeout=settings.read_timeout,
            write_timeout=settings.write_timeout,
            max_body_bytes=settings.max_body_bytes,
            max_held_bytes=settings.held_bytes_limit,
            head_limit=head_limit,
            probe_port=settings.probe_port,
            admin_port=settings.admin_port,
        )


class Conn(TConn):  # type: ignore[misc]
    """A client connection: gthread's, plus what this worker receives on it."""

    def __init__(
        self, cfg: Any, sock: Any, client: Any, server: Any, limits: Limits, hold: Callable[[Conn, int], None],
        scratch: bytearray,
    ) -> None:
        super().__init__(cfg, sock, client, server)
        self.inbox = Inbox(
            head_limit=limits.head_limit, body_limit=limits.max_body_bytes, on_bytes=partial(hold, self), scratch=scratch
        )
        self.handshaking = False
        #: accepted on the probe port: plain HTTP, probes only
        self.probes_only = bool(limits.probe_port) and server[1] == limits.probe_port
        #: accepted on the admin port: plain HTTP, the status page only
        self.admin_only = bool(limits.admin_port) and server[1] == limits.admin_port
        self.request: Request | None = None
        #: the request, if the fast path answers it
        self.call: FastCall | None = None
        #: the rest of a fast-path reply, for a thread to write, and whether to keep the
        #: connection after it
        self.unsent: memoryview | None = None
        self.unsent_keep_alive = False
        #: bytes received on this connection that still count against the worker's budget
        self.held = 0
        #: the worker's one selector callback for this connection (made on first use)
        self.on_event: Callable[..., None] | None = None
        #: kept alive, waiting for its next request
        self.idle = False
