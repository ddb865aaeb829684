"""Kubernetes Events summarising the extender's decision on a pod (``--events``, off by default).

An observer of the service's decision records (:class:`EventRecorder`): a verb hands it the
record and goes on; a background thread combines a pod's filter and prioritize records into
one summary (:func:`extender.status.summary.summary_line`) and posts an events.k8s.io/v1
Event regarding the pod. It never blocks or slows a verb: the queue is bounded and a record
that finds it full is dropped and counted. Rate-limited per pod (one Event per pod per
``per_pod_seconds``) and overall (a token bucket), so a storm of unschedulable pods cannot
flood the API server. Needs RBAC create on events.k8s.io events (deploy/components/events).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extender.engine import Policy
from extender.kube.client import KubeClient
from extender.kube.errors import ApiError
from extender.k8s.timefmt import utc_now, utc_stamp
from extender.status.summary import summary_line
from extender.telemetry import metrics

log = logging.getLogger("extender.events")

Record = Mapping[str, Any]
#: a pod's filter record and/or prioritize record, summarised as one Event
Pair = tuple[Record | None, Record | None]
REPORTING_CONTROLLER = "extender"
REASON = "ExtenderDecision"
ACTION = "Scheduling"


@dataclass(frozen=True)
class EventOptions:
    """How often Events may be posted, and how long a filter waits for its prioritize."""

    #: one Event per pod per this many seconds
    per_pod_seconds: float = 60.0
    #: Events per second overall, and the burst the bucket allows
    rate: float = 5.0
    burst: int = 10
    #: seconds a pod's filter record waits for its prioritize record (kube-scheduler sends
    #: prioritize right after filter, within one scheduling cycle)
    combine_seconds: float = 2.0
    #: records waiting for the background thread; more are dropped
    queue_size: int = 1000
    #: pods remembered for the per-pod limit and for combining
    max_pods: int = 10_000
    #: seconds one POST may take
    timeout: float = 5.0


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def pod_key(record: Record) -> str:
    pod = record.get("pod") or {}
    return str(pod.get("uid") or f"{pod.get('namespace')}/{pod.get('name')}")


def calls_both_verbs(policy: Policy) -> bool:
    """Whether kube-scheduler calls filter and then prioritize for a pod under ``policy`` (it
    registers both verbs: :attr:`Policy.verbs`), so an Event waits for both."""
    verbs = policy.verbs
    return "filterVerb" in verbs and "prioritizeVerb" in verbs


class Combiner:
    """Pairs a pod's filter record with its prioritize record (``expects_prioritize``: the
    policy has priorities and predicates, so kube-scheduler calls both), else lets a record
    through alone; a filter whose prioritize does not come within ``window`` goes alone."""

    def __init__(self, expects_prioritize: bool, window: float, max_pods: int) -> None:
        self.expects_prioritize = expects_prioritize
        self.window = window
        self.max_pods = max_pods
        self._waiting: OrderedDict[str, tuple[Record, float]] = OrderedDict()

    def add(self, record: Record, now: float) -> list[Pair]:
        """What is ready to post after ``record`` arrived at ``now``."""
        key = pod_key(record)
        if record.get("verb") == "prioritize":
            waiting = self._waiting.pop(key, None)
            return [(waiting[0] if waiting else None, record)]
        # A filter that passed no node gets no prioritize call: nothing to wait for.
        if self.expects_prioritize and record.get("outcome") == "answered" and record.get("passed"):
            ready: list[Pair] = []
            previous = self._waiting.pop(key, None)
            if previous is not None:  # the pod's last filter got no prioritize: it goes alone
                ready.append((previous[0], None))
            self._waiting[key] = (record, now + self.window)
            while len(self._waiting) > self.max_pods:
                ready.append((self._waiting.popitem(last=False)[1][0], None))
            return ready
        return [(record, None)]

    def due(self, now: float) -> list[Pair]:
        """Filter records whose prioritize did not come in time."""
        ready: list[Pair] = []
        while self._waiting:
            key, (record, deadline) = next(iter(self._waiting.items()))
            if deadline > now:
                break
            del self._waiting[key]
            ready.append((record, None))
        return ready

    def next_deadline(self) -> float | None:
        return next(iter(self._waiting.values()))[1] if self._waiting else None


def event_body(filtered: Record | None, prioritized: Record | None, instance: str, now: datetime) -> dict[str, Any]:
    """The events.k8s.io/v1 Event regarding the records' pod."""
    pod = dict((filtered or prioritized or {}).get("pod") or {})
    namespace, name = str(pod.get("namespace", "")), str(pod.get("name", ""))
    regarding = {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name}
    if pod.get("uid"):
        regarding["uid"] = str(pod["uid"])
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "eventTime": utc_stamp(now),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": ACTION,
        "reason": REASON,
        "regarding": regarding,
        "note": summary_line(filtered, prioritized),
        "type": "Normal",
    }


class EventRecorder:
    """The observer: ``recorder(record)`` queues; a daemon thread combines, limits and posts.

    Counters (read at will): ``posted``, ``dropped`` (queue full), ``limited`` (rate limits),
    ``failed`` (the API server refused or was unreachable).
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        instance: str,
        expects_prioritize: bool,
        options: EventOptions = EventOptions(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.instance = instance
        self.options = options
        self.clock = clock
        self.wall_clock = wall_clock
        self.combiner = Combiner(expects_prioritize, options.combine_seconds, options.max_pods)
        self.bucket = TokenBucket(options.rate, options.burst, clock)
        self._last: OrderedDict[str, float] = OrderedDict()
        self._queue: queue.Queue[Record | None] = queue.Queue(options.queue_size)
        self.posted = self.dropped = self.limited = self.failed = 0
        self._thread: threading.Thread | None = None


    def follow(self, policy: Policy) -> None:
        """A reload replaced the policy: pair filter and prioritize as it needs."""
        self.combiner.expects_prioritize = calls_both_verbs(policy)

    def __call__(self, record: Record) -> None:
        """Queue a record (filter and prioritize only); never blocks."""
        if record.get("verb") not in ("filter", "prioritize") or record.get("outcome") == "out-of-scope":
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            metrics.event_counted("dropped")

    def start(self) -> EventRecorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="extender-events", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Post what is waiting (within the limits), then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            deadline = self.combiner.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                record = self._queue.get(timeout=wait)
            except queue.Empty:
                record = {}
            if record is None:
                ready = self.combiner.due(float("inf"))
            else:
                ready = (self.combiner.add(record, self.clock()) if record else []) + self.combiner.due(self.clock())
            for filtered, prioritized in ready:
                self._post(filtered, prioritized)
            if record is None:
                return

    def _allowed(self, key: str) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.options.per_pod_seconds:
            return False
        if not self.bucket.take():
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.options.max_pods:
            self._last.popitem(last=False)
        return True

    def _post(self, filtered: Record | None, prioritized: Record | None) -> None:
        if not self._allowed(pod_key(filtered or prioritized or {})):
            self.limited += 1
            metrics.event_counted("limited")
            return
        body = event_body(filtered, prioritized, self.instance, self.wall_clock())  # only for what is posted
        namespace = body["metadata"]["namespace"]
        try:
            self.client.request(
                "POST",
                f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                body=json.dumps(body).encode(),
                retry=False,
                timeout=self.options.timeout,
            )
        except ApiError as exc:
            self.failed += 1
            metrics.event_counted("failed")
            if self.failed == 1 or self.failed % 100 == 0:  # a missing RBAC rule would repeat on every pod
                log.warning("posting an Event for pod %s/%s failed (%d so far): %s", namespace, body["regarding"]["name"], self.failed, exc)
            return
        self.posted += 1
        metrics.event_counted("posted")
