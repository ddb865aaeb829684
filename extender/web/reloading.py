"""Policy hot reload in a worker: a thread that re-reads the policy file (every
``policy_poll_seconds``, and at once when woken by SIGHUP) and swaps in a new service.

The app's current service is ``extensions["extender.service"]``; the verbs look it up once
per call (:class:`~extender.web.verbs.VerbEndpoint`), so a swap is one dict assignment:
calls in flight finish on the service (and policy) they started with, the next ones get the
new one. What the running process has is reused: the node and pod caches, the binder, the
nodes seen in requests, and the metric sources when the new policy declares the same ones.
The new engine starts with no verdicts kept; the old service stops following the node
cache. A policy that needs what the process was started without (Kubernetes API access
for bind or a metrics-server source, a binder) is refused: that takes a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from extender.engine import Policy
from extender.kube.cluster import ClusterState
from extender.load.state import LoadState, rule_readers, uses_metrics_api
from extender.policy.reload import Candidate, PolicyFileWatch, ReloadAttempt, ReloadStatus, Trigger, remember_good
from extender.service import ExtenderService
from extender.settings import Settings

log = logging.getLogger("extender.policy")

SERVICE = "extender.service"
LOAD = "extender.load"


@dataclass(frozen=True)
class Rebuild:
    """How this worker builds what a policy needs from what it runs (see create_app)."""

    #: the policy's metric sources, not started (None: it has none)
    sources: Callable[[Policy], LoadState | None]
    #: a service for the policy reading these sources, on the running cluster state
    service: Callable[[Policy, LoadState | None], ExtenderService]
    #: why the policy cannot run in this process without a restart, or None
    missing: Callable[[Policy], str | None]


def missing_access(settings: Settings, cluster: ClusterState | None, policy: Policy) -> str | None:
    """What ``policy`` needs that a process started with ``settings`` and ``cluster`` lacks."""
    metrics_api = uses_metrics_api(policy)
    if cluster is None and settings.needs_api(policy.bind_enabled, metrics_api):
        needs = [what for what, on in (("bind", policy.bind_enabled), ("a metrics-server source", metrics_api)) if on]
        return (
            f"the new policy needs Kubernetes API access ({', '.join(needs)}), which this process was started "
            "without: restart the extender to apply it"
        )
    if cluster is not None and policy.bind_enabled and cluster.binder is None:
        return "the new policy enables bind, which this process was started without: restart the extender to apply it"
    return None


def same_sources(running: Policy, new: Policy) -> bool:
    """Whether ``new`` reads the same metrics from the same sources, through the same rules
    (the running sources then serve it as they are)."""
    return dict(running.sources) == dict(new.sources) and rule_readers(running) == rule_readers(new)


class PolicyReloader:
    """One per worker; :meth:`start` in the serving process. Thread-safe: only its own
    thread changes the app's service."""

    def __init__(
        self,
        extensions: MutableMapping[str, Any],
        rebuild: Rebuild,
        status: ReloadStatus,
        watch: PolicyFileWatch | None,
        poll_seconds: float,
        runtime_dir: str | None = None,
    ) -> None:
        """``runtime_dir``: where each applied policy is kept for workers started later
        (:func:`~extender.policy.reload.remember_good`)."""
        self._extensions = extensions
        self._rebuild = rebuild
        self.status = status
        #: None: the embedded default policy, no file to re-read
        self.watch = watch
        self.poll_seconds = poll_seconds
        self.runtime_dir = runtime_dir
        self._woken = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the file (every ``poll_seconds``; with 0, only when woken)."""
        if self.watch is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="policy-reload", daemon=True)
        self._thread.start()
        every = f"every {self.poll_seconds:g}s and on SIGHUP" if self.poll_seconds > 0 else "on SIGHUP only"
        log.info("watching policy file %s for changes (%s)", self.watch.path, every)

    def wake(self) -> None:
        """Re-read the policy now (SIGHUP). Safe in a signal handler: it only sets an event."""
        self._woken.set()

    def stop(self) -> None:
        self._stopped = True
        self._woken.set()

    def _run(self) -> None:
        while not self._stopped:
            self._woken.wait(self.poll_seconds if self.poll_seconds > 0 else None)
            woken = self._woken.is_set()
            if woken:  # cleared only when seen set: a SIGHUP arriving meanwhile is not lost
                self._woken.clear()
            if self._stopped:
                return
            try:
                self.check("signal" if woken else "file")
            except Exception:  # noqa: BLE001 - the watch must outlive any one bad reload
                log.exception("policy reload failed unexpectedly; still serving the running policy")

    @property
    def service(self) -> ExtenderService:
        service: ExtenderService = self._extensions[SERVICE]
        return service

    def check(self, trigger: Trigger) -> ReloadAttempt | None:
        """Re-read the file (``signal``: even if unchanged); apply a new valid policy. The
        attempt, or None if there was nothing new to apply."""
        if self.watch is None:
            return None
        candidate = self.watch.check(force=trigger == "signal")
        running = self.service.policy
        if candidate is None:
            return None
        if candidate.policy is not None and candidate.digest == running.digest:
            last = self.status.last
            if last is not None and not last.ok:  # the file is back to what runs: nothing is wrong any more
                attempt = ReloadAttempt(datetime.now(timezone.utc), trigger, True, candidate.digest)
                self.status.record(attempt)
                log.info("policy file %s is back to the running policy (digest %s)", running.source, running.digest)
                return attempt
            if trigger == "signal":
                log.info("policy %s unchanged (digest %s): nothing to reload", running.source, running.digest)
            return None
        return self._apply(candidate, trigger)

    def _apply(self, candidate: Candidate, trigger: Trigger) -> ReloadAttempt:
        now = datetime.now(timezone.utc)
        policy = candidate.policy
        if policy is None:
            assert candidate.error is not None
            problems = tuple(candidate.error.problems)
            return self._failed(ReloadAttempt(now, trigger, False, candidate.digest, "invalid policy", problems))
        missing = self._rebuild.missing(policy)
        if missing is not None:
            return self._failed(ReloadAttempt(now, trigger, False, candidate.digest, missing))
        old_service = self.service
        old_load: LoadState | None = self._extensions.get(LOAD)
        reuse = same_sources(old_service.policy, policy)
        load: LoadState | None = None
        try:
            load = old_load if reuse else self._rebuild.sources(policy)
            service = self._rebuild.service(policy, load)
        except Exception as exc:  # noqa: BLE001 - reported like an invalid policy; the old one runs on
            if load is not None and load is not old_load:
                load.stop()  # never started; closes what its sources opened
            if not isinstance(exc, ValueError):  # a bug, not the policy: keep its traceback
                log.exception("building a service for policy %s failed", candidate.digest)
            error = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return self._failed(ReloadAttempt(now, trigger, False, candidate.digest, error))
        if load is not old_load and load is not None:
            load.start()  # empty until its first fetch: each rule's onStale meanwhile, as at start-up
        # The swap: one assignment each; the verbs look the service up once per call.
        self._extensions[LOAD] = load
        self._extensions[SERVICE] = service
        old_service.close()
        if old_load is not None and old_load is not load:
            old_load.stop()
        attempt = ReloadAttempt(now, trigger, True, candidate.digest)
        remember_good(self.runtime_dir, candidate.text)
        self.status.record(attempt)
        log.info(
            "policy reloaded in worker %d (%s): %s digest %s -> %s: %d predicate(s), %d priority(ies), bind %s; "
            "metric sources %s",
            os.getpid(), "SIGHUP" if trigger == "signal" else "file changed", policy.source, old_service.policy.digest,
            policy.digest, len(policy.predicates), len(policy.priorities), "on" if policy.bind_enabled else "off",
            ("none" if load is None else "kept" if reuse else ", ".join(policy.sources) + " (started anew)"),
        )
        return attempt

    def _failed(self, attempt: ReloadAttempt) -> ReloadAttempt:
        self.status.record(attempt)
        running = self.service.policy
        log.error(
            "policy reload REFUSED in worker %d (%s): %s digest %s: %s%s; still serving digest %s",
            os.getpid(), "SIGHUP" if attempt.trigger == "signal" else "file changed", running.source, attempt.digest,
            attempt.error, f": {'; '.join(attempt.problems)}" if attempt.problems else "", running.digest,
        )
        return attempt
