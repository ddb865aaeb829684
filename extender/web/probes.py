"""``GET /healthz`` and ``/readyz`` as status and body: the one answer of each probe, served
by the Flask routes and, in the serving worker's event loop, by its fast path (so kubelet's
probes are answered even while every thread is busy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extender.codec.common import encode_json

Readiness = Callable[[], tuple[bool, str]]
Health = Callable[[], dict[str, Any]]
#: the probe paths, by the name :meth:`Probes.answer` takes
PROBE_PATHS = {"healthz": "/healthz", "readyz": "/readyz"}


class Probes:
    """Liveness (``healthz``: always 200, reporting cache ages and metric sources) and
    readiness (``readyz``: 503 until ready, and while draining)."""

    def __init__(self, readiness: Readiness, health: Health, sources: Health) -> None:
        self._readiness = readiness
        self._health = health
        self._sources = sources

    def answer(self, probe: str) -> tuple[int, bytes]:
        """Status and JSON body of ``probe`` (a key of :data:`PROBE_PATHS`)."""
        return self.healthz() if probe == "healthz" else self.readyz()

    def health_report(self) -> dict[str, Any]:
        """What ``healthz`` answers: cache ages and metric sources, when there are any."""
        report: dict[str, Any] = {"status": "ok"}
        caches = self._health()
        if caches:
            report["caches"] = caches
        sources = self._sources()
        if sources:  # none when the running policy has no metric sources
            report["sources"] = sources
        return report

    def readiness(self) -> tuple[bool, str]:
        """Whether this worker is ready, and why (what ``readyz`` answers)."""
        return self._readiness()

    def healthz(self) -> tuple[int, bytes]:
        # Liveness stays 200 whatever the caches say: a slow API server must not get every
        # replica restarted. The cache ages are there for humans and alerts.
        # Sources are reported, never judged: stale load data is each rule's onStale's business.
        return 200, encode_json(self.health_report())

    def readyz(self) -> tuple[int, bytes]:
        ready, detail = self.readiness()
        return (200 if ready else 503), encode_json({"status": "ready" if ready else "not ready", "detail": detail})
