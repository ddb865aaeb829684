"""The server's TLS context, rebuilt when its certificate files change on disk.

cert-manager and Secret volumes rotate certificates by swapping files (a Secret volume
swaps a ``..data`` symlink): the context is checked at most once per ``check_interval`` on
new connections and rebuilt when any file's identity (inode, size, mtime) changed. A
rebuild that fails (a key that no longer matches a half-written certificate) keeps the
previous context and is retried at the next check, so a rotation never takes the listener
down. Connections already open keep the context they were accepted with.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("extender.tls")

FileIdentity = tuple[int, int, int, int] | None


class TLSFilesError(Exception):
    """A certificate, key or CA file could not be loaded; the message names it and why."""


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: the server's certificate chain and key, and optionally the CA that client
    certificates must chain to (mTLS: a client without such a certificate is refused)."""

    cert: str
    key: str
    client_ca: str | None = None

    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) if self.client_ca is None else (self.cert, self.key, self.client_ca)


def build_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context: TLS 1.2 or newer, HTTP/1.1 only, client certificates per ``files``.

    Raises :class:`TLSFilesError` naming the file that could not be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # what kube-scheduler's client offers at least
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])  # Go tries h2 over TLS; this server speaks HTTP/1.1
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFilesError(f"server certificate {files.cert} / key {files.key}: {exc}") from None
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=files.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TLSFilesError(f"client CA {files.client_ca}: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def _identity(path: str) -> FileIdentity:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link changes the target's inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ReloadingContext:
    """The current :class:`ssl.SSLContext` for ``files``; thread-safe."""

    def __init__(
        self, files: TLSFiles, *, check_interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.files = files
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._identities = tuple(_identity(p) for p in files.paths())
        self._context = build_context(files)  # fails start-up loudly: no TLS, no service
        self._checked = clock()
        self._failed_for: tuple[FileIdentity, ...] | None = None
        #: how many times the files changed and the new ones were loaded
        self.reloads = 0

    def current(self) -> ssl.SSLContext:
        """The context for a new connection (rebuilt first if the files changed)."""
        now = self._clock()
        if now - self._checked < self.check_interval:
            return self._context
        with self._lock:
            if now - self._checked >= self.check_interval:
                self._checked = now
                self._reload_if_changed()
        return self._context

    def _reload_if_changed(self) -> None:
        identities = tuple(_identity(p) for p in self.files.paths())
        if identities == self._identities or identities == self._failed_for:
            return
        try:
            context = build_context(self.files)
        except TLSFilesError as exc:
            self._failed_for = identities  # logged once per change, retried when they change again
            log.error("TLS files changed but could not be loaded; still serving the previous certificate: %s", exc)
            return
        self._context, self._identities, self._failed_for = context, identities, None
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.files.cert)
