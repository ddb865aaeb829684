"""The last N decision records, for the status page.

Each gunicorn worker keeps its own ring of fixed-size slots in a file of its own,
``<runtime dir>/decisions/<pid>.ring``: a write is one ``pwrite`` of one slot (no lock across
processes, no fsync; the page may read a slot being written, and skips it as unreadable).
The page, served by any worker, reads every worker's file. Without a runtime directory (the
Flask test client, an app built in-process) the ring is a list in memory.

A slot is a 4-byte length and the JSON ``{"id": ..., "record": {...}}``. A record too large
for its slot loses its ``table`` (the per-node detail), then is cut down to its summary.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec

from extender.telemetry.runtime import DECISIONS_SUBDIR

Record = Mapping[str, Any]
#: bytes per slot: a summary record is well under 2 KiB; a table of 50 nodes x 5 rules ~ 12 KiB
SLOT_BYTES = 16 * 1024
_LENGTH = struct.Struct("<I")
#: what a record keeps when even its summary does not fit a slot
_ESSENTIAL = ("verb", "time", "pod", "mode", "policy", "nodes", "outcome", "tookMs", "passed", "best", "node", "error")
_encode = msgspec.json.Encoder().encode


class DecisionStore(Protocol):
    """Where decisions are kept: called with each record (an observer), read by the page."""

    def __call__(self, record: Record) -> None: ...

    def recent(self, pod: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        """Stored entries ``{"id", "record"}``, newest first; ``pod``: only those whose
        ``namespace/name`` contains it."""

    def get(self, entry_id: str) -> dict[str, Any] | None:
        """The entry with this id, if it is still kept."""


def slot_bytes(entry_id: str, record: Record, size: int = SLOT_BYTES) -> bytes:
    """The slot's content for ``record``: length and JSON, at most ``size`` bytes."""
    candidates = (record, {k: v for k, v in record.items() if k != "table"}, {k: record[k] for k in _ESSENTIAL if k in record})
    for candidate in candidates:
        data = _encode({"id": entry_id, "record": candidate})
        if len(data) + _LENGTH.size <= size:
            return _LENGTH.pack(len(data)) + data
    data = _encode({"id": entry_id, "record": {"verb": record.get("verb"), "time": record.get("time")}})
    return _LENGTH.pack(len(data)) + data


def _newest_first(entries: Iterable[dict[str, Any]], pod: str, limit: int) -> list[dict[str, Any]]:
    wanted = pod.strip().lower()
    chosen = [e for e in entries if not wanted or wanted in _pod_key(e["record"])]
    chosen.sort(key=lambda e: (str(e["record"].get("time", "")), e["id"]), reverse=True)
    return chosen[:limit]


def _pod_key(record: Mapping[str, Any]) -> str:
    pod = record.get("pod") or {}
    return f"{pod.get('namespace', '')}/{pod.get('name', '')}".lower() if isinstance(pod, Mapping) else ""


class MemoryStore:
    """The last ``capacity`` records of this process, in memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._sequence = 0
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        with self._lock:
            self._sequence += 1
            self._entries.append({"id": f"{os.getpid()}-{self._sequence:012d}", "record": dict(record)})

    def recent(self, pod: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._entries)
        return _newest_first(entries, pod, limit or self.capacity)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((e for e in self._entries if e["id"] == entry_id), None)


class RingFileStore:
    """This worker's ring file under ``directory`` for writing; every worker's for reading.

    ``capacity`` slots per worker; the page shows the newest ``capacity`` of all workers'.
    """

    def __init__(self, directory: str | Path, capacity: int, slot_size: int = SLOT_BYTES) -> None:
        self.directory = Path(directory)
        self.capacity = capacity
        self.slot_size = slot_size
        self._pid = os.getpid()
        self._sequence = 0
        self._lock = threading.Lock()
        self._fd = -1

    def _file(self) -> int:
        """This process' ring file, made on first use (a fork gets its own)."""
        if self._fd < 0 or self._pid != os.getpid():
            self._pid = os.getpid()
            self._sequence = 0
            path = self.directory / f"{self._pid}.ring"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(self._fd, self.capacity * self.slot_size)
        return self._fd

    def __call__(self, record: Record) -> None:
        """Write ``record`` over this worker's oldest slot."""
        with self._lock:
            fd = self._file()
            self._sequence += 1
            sequence = self._sequence
        data = slot_bytes(f"{self._pid}-{sequence:012d}", record, self.slot_size)
        os.pwrite(fd, data, ((sequence - 1) % self.capacity) * self.slot_size)

    def _entries(self) -> list[dict[str, Any]]:
        entries = []
        for path in sorted(self.directory.glob("*.ring")):
            try:
                content = path.read_bytes()
            except OSError:
                continue  # a file going away
            for offset in range(0, len(content), self.slot_size):
                entry = self._decode(content[offset : offset + self.slot_size])
                if entry is not None:
                    entries.append(entry)
        return entries

    @staticmethod
    def _decode(slot: bytes) -> dict[str, Any] | None:
        if len(slot) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(slot)
        if not 0 < length <= len(slot) - _LENGTH.size:
            return None  # never written
        try:
            entry = json.loads(slot[_LENGTH.size : _LENGTH.size + length])
        except ValueError:
            return None  # read while it was being written
        if not isinstance(entry, dict) or not isinstance(entry.get("record"), dict) or not isinstance(entry.get("id"), str):
            return None
        return entry

    def recent(self, pod: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        return _newest_first(self._entries(), pod, limit or self.capacity)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        return next((e for e in self._entries() if e["id"] == entry_id), None)


def decision_store(runtime_dir: str | None, capacity: int) -> DecisionStore:
    """Ring files shared by the workers under ``runtime_dir/decisions``, else memory."""
    if runtime_dir:
        directory = Path(runtime_dir) / DECISIONS_SUBDIR
        directory.mkdir(parents=True, exist_ok=True)
        return RingFileStore(directory, capacity)
    return MemoryStore(capacity)
