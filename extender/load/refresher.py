"""Background refresh of metric sources, and the store the request threads read.

Each source gets one daemon thread (:class:`Refresher`) that fetches its keys at start and
then every ``refreshInterval`` (with a little jitter, so replicas spread their queries), and
swaps the result into the :class:`MetricStore` in one assignment. Request threads read the
store without a lock and never wait on a source: a hung fetch only makes the samples older,
and each rule's ``onStale`` decides what old data means. Sources never affect readiness.

Logging, once per refresh and per source (never per node or per request): one line saying
what failed, and which nodes have no fresh sample of which key and which rules that makes
fall back to their ``onStale``. A line that says the same as the previous one (a cluster
without metrics-server answers 404 every 30 s) is logged at WARNING when the state changes
and then at most every :data:`REPEAT_WARNING_SECONDS`; in between at DEBUG. While fetches
fail, "the same" means the same error. A recovery is logged once at INFO.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from extender.load.source import MetricSource, NodeLister, Samples, SourceError
from extender.measured import MetricRef, Sample, fresh
from extender.telemetry import metrics

log = logging.getLogger("extender.load")

#: how often an unchanged problem is repeated at WARNING
REPEAT_WARNING_SECONDS = 300.0
#: node names a staleness line lists per key
STALE_NAMES_SHOWN = 5
#: the refresh interval is stretched by up to this fraction, at random, per round
JITTER = 0.1

#: per metric key, the rules reading it as ``(rule name, onStale)``
RuleReaders = Mapping[str, Sequence[tuple[str, str]]]
_EMPTY: Mapping[str, Sample] = {}


class MetricStore:
    """The latest samples of every source (implements :class:`~extender.load.view.SampleReader`).

    A fetch's result replaces the source's samples in one assignment; a failed fetch keeps
    the previous ones, which turn stale by age. An unknown source has no samples.
    """

    def __init__(self, max_ages: Mapping[str, float]) -> None:
        self._max_ages = dict(max_ages)
        self._samples: dict[str, Samples] = {}

    def sample(self, ref: MetricRef, node: str) -> Sample | None:
        by_key = self._samples.get(ref.source)
        if by_key is None:
            return None
        return by_key.get(ref.key, _EMPTY).get(node)

    def max_age(self, ref: MetricRef) -> float:
        return self._max_ages.get(ref.source, 0.0)

    def replace(self, source: str, samples: Samples) -> None:
        """Publish a fetch's result for ``source`` (called from its refresher thread)."""
        self._samples[source] = samples

    def samples(self, source: str) -> Samples:
        return self._samples.get(source, {})


@dataclass
class SourceStatus:
    """What /healthz reports about one source."""

    type: str
    keys: list[str]
    last_success: float | None = None  # time.time()
    last_attempt: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    fetches: int = 0
    fetch_seconds: float | None = None
    series: dict[str, int] = field(default_factory=dict)
    partial_errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    #: per key, how many known nodes had no fresh sample after the last refresh
    stale_nodes: dict[str, int] = field(default_factory=dict)

    def report(self, now: float) -> dict[str, Any]:
        return {
            "type": self.type,
            "keys": self.keys,
            "lastSuccess": _rfc3339(self.last_success),
            "lastSuccessAgeSeconds": round(now - self.last_success, 3) if self.last_success is not None else None,
            "lastError": self.last_error,
            "consecutiveFailures": self.consecutive_failures,
            "fetches": self.fetches,
            "fetchSeconds": round(self.fetch_seconds, 4) if self.fetch_seconds is not None else None,
            "series": dict(self.series),
            "partialErrors": dict(self.partial_errors),
            "warnings": {key: list(notes) for key, notes in self.warnings.items()},
            "staleNodes": dict(self.stale_nodes),
        }


def _newest(samples: Samples) -> float | None:
    """The newest sample's timestamp (a pass over the samples, once per fetch, off the request path)."""
    return max((s.timestamp for by_node in samples.values() for s in by_node.values()), default=None)


def _rfc3339(at: float | None) -> str | None:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


class _Throttle:
    """WARNING when the message changes, then at most every ``every`` seconds; DEBUG between."""

    def __init__(self, every: float = REPEAT_WARNING_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._last: str | None = None
        self._warned_at = -math.inf

    def level(self, state: str | None) -> int:
        """The level to log ``state`` at (None is healthy: INFO right after a problem, else DEBUG)."""
        previous, self._last = self._last, state
        if state is None:
            return logging.INFO if previous is not None else logging.DEBUG
        now = self.clock()
        if state != previous or now - self._warned_at >= self.every:
            self._warned_at = now
            return logging.WARNING
        return logging.DEBUG


class Refresher:
    """Runs one source on its own thread; see the module docstring for timing and logging."""

    def __init__(
        self,
        source: MetricSource,
        store: MetricStore,
        nodes: NodeLister,
        readers: RuleReaders | None = None,
        *,
        clock: Callable[[], float] = time.time,
        throttle: _Throttle | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.nodes = nodes
        self.readers = readers or {}
        self.clock = clock
        self.keys: Collection[str] = sorted(source.spec.keys)
        self.status = SourceStatus(type=source.spec.type, keys=list(self.keys))
        self._throttle = throttle or _Throttle()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"refresh-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread and wait for it (a fetch in flight ends within its own timeout)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.source.close()

    def _run(self) -> None:
        interval = self.source.spec.refresh_interval
        while not self._stopping.is_set():
            self.refresh_once()
            if self._stopping.wait(interval * (1 + JITTER * random.random())):
                return

    def refresh_once(self) -> None:
        """One fetch, publish, and log line; never raises (the thread must not die)."""
        started = time.monotonic()
        status = self.status
        status.last_attempt = self.clock()
        error: str | None = None
        try:
            samples = self.source.fetch(self.keys)
        except SourceError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in the source: say what, keep refreshing
            log.exception("source %s: fetch raised %s", self.name, type(exc).__name__)
            error = f"fetch raised {type(exc).__name__}: {exc}"
        status.fetch_seconds = time.monotonic() - started
        status.fetches += 1
        if error is None:
            self.store.replace(self.name, samples)
            status.last_success, status.last_error, status.consecutive_failures = self.clock(), None, 0
            status.series = {key: len(samples.get(key, {})) for key in self.keys}
            status.partial_errors = dict(self.source.partial_errors)
            status.warnings = {key: list(notes) for key, notes in self.source.warnings.items()}
        else:
            status.last_error = error
            status.consecutive_failures += 1
        # After a failure the held samples, and so their newest timestamp, are unchanged.
        newest = _newest(samples) if error is None else None
        metrics.source_fetched(self.name, error is None, self.clock(), newest, self.source.spec.max_age)
        self._log(error)

    def _stale(self) -> dict[str, list[str]]:
        """Per key, the known nodes without a fresh sample."""
        try:
            names = [view.name for view in self.nodes()]
        except Exception:  # the lister is another component: its failure is not this source's
            log.exception("source %s: listing nodes for the staleness check failed", self.name)
            names = []
        now, max_age = self.clock(), self.source.spec.max_age
        samples = self.store.samples(self.name)
        return {
            key: [n for n in names if not fresh(samples.get(key, _EMPTY).get(n), now, max_age)] for key in self.keys
        }

    def _log(self, error: str | None) -> None:
        stale = self._stale()
        self.status.stale_nodes = {key: len(nodes) for key, nodes in stale.items()}
        problems = [f"{key}: {why}" for key, why in self.status.partial_errors.items()]
        problems.extend(f"{key}: {'; '.join(notes)}" for key, notes in self.status.warnings.items() if notes)
        for key, nodes in stale.items():
            if not nodes:
                continue
            shown = ", ".join(nodes[:STALE_NAMES_SHOWN])
            if len(nodes) > STALE_NAMES_SHOWN:
                shown += f", +{len(nodes) - STALE_NAMES_SHOWN} more"
            rules = ", ".join(f"{rule} (onStale {on_stale})" for rule, on_stale in self.readers.get(key, ()))
            problems.append(
                f"{key}: {len(nodes)} node(s) without a fresh sample: {shown}"
                + (f"; rules applying onStale: {rules}" if rules else "")
            )
        if error is not None:
            problems.insert(0, f"fetch failed: {error}")
        state = "; ".join(problems) if problems else None
        # A failed fetch is compared by its error alone: the stale nodes follow from it (and
        # their count grows as the node cache fills or samples age), the cause is the news.
        level = self._throttle.level(f"fetch failed: {error}" if error is not None else state)
        if state is None:
            series = ", ".join(f"{k}={n}" for k, n in self.status.series.items())
            log.log(level, "source %s: %s, series per key: %s", self.name,
                    "recovered" if level == logging.INFO else "refreshed", series)
        else:
            streak = self.status.consecutive_failures
            suffix = f" ({streak} failed fetch(es) in a row)" if error is not None else ""
            log.log(level, "source %s: %s%s", self.name, state, suffix)

    def health(self) -> dict[str, Any]:
        return self.status.report(self.clock())
