"""Every Prometheus series the extender exposes, and the functions that feed them.

Correct under several gunicorn workers: ``extender serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory before anything imports prometheus_client (see
:mod:`extender.telemetry.runtime`), each worker writes its values to its own files there, and
``GET /metrics`` (:func:`exposition`) sums them. Without that variable (the Flask test client,
``create_app`` in-process) the process's own registry answers.

Every gauge is labelled: a labelled series exists only once a worker sets it, so the gunicorn
master (which imports this module but serves nothing) never contributes a value. Gauges use a
``live*`` mode, so a dead worker's values leave with it (``child_exit`` marks it dead).

The functions below are the interface of the other components; they are cheap (a lock and an
mmap write per value) and never raise for well-formed arguments.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Final, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

#: the request outcomes of extender_request_duration_seconds
OK: Final = "ok"
ERROR_ANSWER: Final = "error-answer"  # HTTP 200 whose body carries an Error (e.g. cache not synced, bind failed)
BAD_REQUEST: Final = "bad-request"  # 4xx: the body or its Content-Type was refused
INTERNAL_ERROR: Final = "internal-error"  # 500: a bug, logged
OUTCOMES: Final = (OK, ERROR_ANSWER, BAD_REQUEST, INTERNAL_ERROR)

#: up to and beyond kube-scheduler's default httpTimeout (5 s): a call past it has failed
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.0, 5.0, 10.0, 30.0)
NODE_BUCKETS = (0, 1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000)
#: names mode sends ~20 bytes a node, full nodes ~14 KiB a node; the body limit is 128 MiB
BYTE_BUCKETS = tuple(float(1024 * 4**i) for i in range(10))
RULE_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

REQUEST_SECONDS = Histogram(
    "extender_request_duration_seconds",
    "Time to answer a verb call, from its body in hand to its reply body (excludes network and framing).",
    ["verb", "outcome"],
    buckets=LATENCY_BUCKETS,
)
REQUEST_NODES = Histogram(
    "extender_request_nodes", "Nodes (or preemption candidates) in a verb call.", ["verb"], buckets=NODE_BUCKETS
)
REQUEST_BYTES = Histogram("extender_request_bytes", "Size of a verb call's body.", ["verb"], buckets=BYTE_BUCKETS)
RULE_SECONDS = Histogram(
    "extender_rule_evaluation_seconds", "Time one rule took over one call's nodes.", ["rule"], buckets=RULE_BUCKETS
)
REJECTIONS = Counter(
    "extender_rejections", "Nodes rejected, by verb, rule and reason.", ["verb", "rule", "reason"]
)
SHADOW_REJECTIONS = Counter(
    "extender_shadow_rejections", "Nodes a shadow (report-only) predicate would have rejected.", ["rule"]
)
DECISIONS = Counter("extender_decisions", "Decision records observed, by verb and outcome.", ["verb", "outcome"])
BINDS = Counter("extender_binds", "Bind calls, by outcome.", ["outcome"])
EVENTS = Counter(
    "extender_events",
    "Kubernetes Events about decisions (--events), by outcome: posted, limited (rate limits), dropped (queue "
    "full), failed (the API server refused or was unreachable).",
    ["outcome"],
)
CACHE_OBJECTS = Gauge(
    "extender_cache_objects", "Objects in a watch cache (largest over workers).", ["cache"], multiprocess_mode="livemax"
)
CACHE_UPDATED = Gauge(
    "extender_cache_last_update_timestamp_seconds",
    "When a watch cache last had a list or watch event (bookmarks included); the stalest worker's.",
    ["cache"],
    multiprocess_mode="livemin",
)
CACHE_CONNECTED = Gauge(
    "extender_cache_connected",
    "1 while a watch cache has a watch open (or is listing), 0 while without the API server; the lowest over workers.",
    ["cache"],
    multiprocess_mode="livemin",
)
CACHE_RELISTS = Counter("extender_cache_relists", "Full lists of a watch cache after its first.", ["cache"])
CACHE_WATCH_ERRORS = Counter(
    "extender_cache_watch_errors", "Failed lists and watches of a watch cache (each one reconnects).", ["cache"]
)
SOURCE_FETCHES = Counter("extender_source_fetches", "Fetches of a metric source.", ["source"])
SOURCE_ERRORS = Counter("extender_source_fetch_errors", "Failed fetches of a metric source.", ["source"])
SOURCE_SUCCESS = Gauge(
    "extender_source_last_success_timestamp_seconds",
    "When a metric source's last fetch succeeded; the stalest worker's.",
    ["source"],
    multiprocess_mode="livemin",
)
SOURCE_NEWEST = Gauge(
    "extender_source_newest_sample_timestamp_seconds",
    "When the newest sample a metric source holds was measured; the stalest worker's.",
    ["source"],
    multiprocess_mode="livemin",
)
SOURCE_MAX_AGE = Gauge(
    "extender_source_max_age_seconds",
    "A metric source's maxAge: older samples are stale and rules apply their onStale.",
    ["source"],
    multiprocess_mode="livemax",
)
POLICY_RELOADS = Counter("extender_policy_reloads", "Policy reloads, by outcome (success, failure).", ["outcome"])
POLICY_INFO = Gauge(
    "extender_policy_info", "1 for the digest of the policy a live worker serves.", ["digest"], multiprocess_mode="livemax"
)

#: every metric above, by its name as exposed (counters gain _total, histograms _bucket/_sum/_count)
ALL = (
    REQUEST_SECONDS, REQUEST_NODES, REQUEST_BYTES, RULE_SECONDS, REJECTIONS, SHADOW_REJECTIONS, DECISIONS, BINDS, EVENTS,
    CACHE_OBJECTS, CACHE_UPDATED, CACHE_CONNECTED, CACHE_RELISTS, CACHE_WATCH_ERRORS, SOURCE_FETCHES, SOURCE_ERRORS,
    SOURCE_SUCCESS, SOURCE_NEWEST, SOURCE_MAX_AGE, POLICY_RELOADS, POLICY_INFO,
)  # fmt: skip


# -- verb calls (hot path) --------------------------------------------------------------------

class _Call(threading.local):
    """Whether the call this thread is answering got an Error answer (its decision record
    says so; set per call, O(1))."""

    error_answer = False


_call = _Call()
#: labelled children by (metric, *label values), looked up once: labels() takes a lock and
#: builds a tuple on every call, and these run once or more per verb call
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def begin_call() -> None:
    """A verb call starts on this thread: forget what the previous one noted."""
    _call.error_answer = False


def end_call(verb: str, outcome: str, seconds: float, body_bytes: int) -> None:
    """A verb call was answered: ``outcome`` is one of :data:`OUTCOMES` (:data:`OK` becomes
    :data:`ERROR_ANSWER` if the call's decision record said ``error``)."""
    if outcome == OK and _call.error_answer:
        outcome = ERROR_ANSWER
    _child(REQUEST_SECONDS, verb, outcome).observe(seconds)
    _child(REQUEST_BYTES, verb).observe(body_bytes)


# -- decisions and rules ----------------------------------------------------------------------

def observe_decision(record: Mapping[str, Any]) -> None:
    """Count a decision record (the shape of the decisions contract): its ``rejected``
    entries by ``verb``, ``rule``, ``reason`` and ``count``, its ``shadow`` entries'
    ``wouldReject``, and the record itself by ``verb`` and ``outcome``. Missing keys count
    as nothing; the integrator registers this as a service observer. Each distinct reason is
    a series: rules word reasons per cause, never per node (kube-scheduler groups them too).

    The record is also what the request series learn of the call from: its ``nodes``
    (``extender_request_nodes``; bind carries one node name, not a list) and an ``error``
    outcome (the call's duration is then counted as ``error-answer``: the service calls its
    observers before the HTTP layer's :func:`end_call`, on the same thread)."""
    verb = str(record.get("verb", ""))
    outcome = str(record.get("outcome", ""))
    _child(DECISIONS, verb, outcome).inc()
    if outcome == "error":
        _call.error_answer = True
    nodes = record.get("nodes")
    if verb != "bind" and isinstance(nodes, int):
        _child(REQUEST_NODES, verb).observe(nodes)
    for rejected in record.get("rejected") or ():
        count = int(rejected.get("count", 0))
        if count > 0:
            _child(REJECTIONS, verb, str(rejected.get("rule", "")), str(rejected.get("reason", ""))).inc(count)
    for shadow in record.get("shadow") or ():
        would = int(shadow.get("wouldReject", 0))
        if would > 0:
            _child(SHADOW_REJECTIONS, str(shadow.get("rule", ""))).inc(would)


def observe_rule_seconds(rule: str, seconds: float) -> None:
    """The engine: ``rule`` took ``seconds`` over one call's nodes."""
    _child(RULE_SECONDS, rule).observe(seconds)


def bind_answered(outcome: str) -> None:
    """A bind call was answered: ``bound``, ``failed`` (the API server refused or did not
    answer), ``not-enabled`` or ``no-api-access`` (anything but ``bound`` is an Error answer,
    which the bind's decision record says too)."""
    _child(BINDS, outcome).inc()


def event_counted(outcome: str) -> None:
    """The Event poster (extender.kube.events): an Event was ``posted``, ``limited``,
    ``dropped`` or ``failed``."""
    _child(EVENTS, outcome).inc()


# -- caches and metric sources (background threads) --------------------------------------------

def cache_listed(cache: str, objects: int, at: float, relist: bool) -> None:
    """A watch cache completed a list of ``objects`` at POSIX time ``at``."""
    relists = CACHE_RELISTS.labels(cache)  # from 0, so rate() and increase() see the first
    if relist:
        relists.inc()
    CACHE_WATCH_ERRORS.labels(cache)
    CACHE_OBJECTS.labels(cache).set(objects)
    CACHE_UPDATED.labels(cache).set(at)


def cache_event(cache: str, objects: int, at: float) -> None:
    """A watch cache applied a watch event (or a bookmark) at POSIX time ``at``."""
    CACHE_OBJECTS.labels(cache).set(objects)
    CACHE_UPDATED.labels(cache).set(at)


def cache_connected(cache: str, connected: bool) -> None:
    """A watch cache's connection to the API server opened (True) or ended (False)."""
    CACHE_CONNECTED.labels(cache).set(1 if connected else 0)


def cache_watch_error(cache: str) -> None:
    """A list or watch of a watch cache failed (it reconnects after a backoff)."""
    CACHE_WATCH_ERRORS.labels(cache).inc()


def source_fetched(source: str, ok: bool, at: float, newest_sample: float | None, max_age: float) -> None:
    """A metric source's fetch ended at POSIX time ``at``; ``newest_sample``: the newest
    sample's timestamp it holds now (None: it holds none); ``max_age``: its maxAge."""
    SOURCE_FETCHES.labels(source).inc()
    SOURCE_MAX_AGE.labels(source).set(max_age)
    errors = SOURCE_ERRORS.labels(source)  # from 0, so the error ratio is 0 rather than absent
    if ok:
        SOURCE_SUCCESS.labels(source).set(at)
    else:
        errors.inc()
    if newest_sample is not None:
        SOURCE_NEWEST.labels(source).set(newest_sample)


# -- policy -------------------------------------------------------------------------------------

_policy_lock = threading.Lock()
_policy_digest: list[str] = []


def policy_loaded(digest: str, *, reload: bool = True) -> None:
    """This worker serves the policy ``digest`` from now on; ``reload``: it replaced another
    (counted as a successful reload), else it is the one the worker started with."""
    with _policy_lock:
        for old in _policy_digest:
            if old != digest:
                POLICY_INFO.labels(old).set(0)
        _policy_digest[:] = [digest]
        POLICY_INFO.labels(digest).set(1)
    if reload:
        POLICY_RELOADS.labels("success").inc()


def policy_reload_failed() -> None:
    """A reload was refused (the new policy is invalid); the previous one keeps serving."""
    POLICY_RELOADS.labels("failure").inc()


class ReloadOutcome(Protocol):
    """What a reload attempt says (extender.policy.reload.ReloadAttempt)."""

    @property
    def ok(self) -> bool: ...

    @property
    def digest(self) -> str: ...


def policy_reloaded(attempt: ReloadOutcome) -> None:
    """A listener of the policy reload status: each attempt, counted by its outcome."""
    if attempt.ok:
        policy_loaded(attempt.digest)
    else:
        policy_reload_failed()


# -- exposition -------------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    """The directory every worker writes its values to, or None (this process alone)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of every worker's values (summed as each metric's mode says) and
    its Content-Type."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
