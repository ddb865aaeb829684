"""Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from extender.decisions import DecisionLogOptions, Observer
from extender.engine import Policy
from extender.kube.cluster import ClusterOptions, ClusterState
from extender.kube.config import load_config
from extender.kube.client import KubeClient
from extender.kube.seen import SeenNodes
from extender.load.source import NodeLister
from extender.load.state import LoadState, build_load, uses_metrics_api
from extender.load.view import ClusterLoad
from extender.view import NodeView
from extender.policy import load_policy
from extender.policy.reload import PolicyFileWatch, ReloadAttempt, ReloadStatus
from extender.service import ExtenderService, ServiceOptions
from extender.settings import Settings
from extender.web.openapi import openapi_blueprint
from extender.web.probes import Health, Probes, Readiness
from extender.web.reloading import PolicyReloader, Rebuild, missing_access
from extender.web.verbs import VerbEndpoint
from extender.telemetry import metrics
from extender.web.telemetry import metrics_blueprint
from extender.web.routes import handle_http_error, handle_unexpected, probes_blueprint, verbs_blueprint
# -- status page and Events (README "Status page", "Events") --
from extender.kube.events import EventRecorder, calls_both_verbs
from extender.status.store import DecisionStore, decision_store
from extender.web.status import status_blueprint

log = logging.getLogger("extender")


def _always_ready() -> tuple[bool, str]:
    return True, "policy loaded"


def _no_caches() -> dict[str, Any]:
    return {}


def _unless_draining(readiness: Readiness, draining: Callable[[], bool] | None) -> Readiness:
    if draining is None:
        return readiness

    def ready() -> tuple[bool, str]:
        if draining():
            return False, "shutting down: finishing requests in flight"
        return readiness()

    return ready


def build_cluster(settings: Settings, policy: Policy) -> ClusterState | None:
    """The caches and binder these settings and this policy need (not started), or None.

    Raises :class:`~extender.kube.config.ConfigError` if the API is needed but unreachable
    by configuration (no in-cluster service account, no kubeconfig).
    """
    if not settings.needs_api(policy.bind_enabled, uses_metrics_api(policy)):
        return None
    config = load_config(settings.kubeconfig, settings.kube_context)
    return ClusterState(
        config,
        ClusterOptions(
            nodes=settings.node_cache,
            pods=settings.pod_cache,
            bind=policy.bind_enabled,
            bind_timeout=settings.bind_timeout,
            resync_period=settings.resync_seconds,
            node_lookup=settings.preempt_node_lookup,
            node_lookup_timeout=settings.preempt_lookup_timeout,
            stale_after=settings.cache_stale_seconds,
            bind_retention=settings.inflight_retention_seconds,
        ),
    )


def node_lister(cluster: ClusterState | None, seen: SeenNodes | None) -> NodeLister:
    """The nodes sources map their series through: the node cache's views if there is one,
    else the nodes seen in full-node requests (else none)."""
    store = cluster.nodes if cluster is not None else None
    if store is not None:
        cache = store

        def cached() -> list[NodeView]:
            return [view for view in cache.get_many(cache.names()) if view is not None]

        return cached
    if seen is not None:
        remembered = seen

        def seen_views() -> list[NodeView]:
            return [view for view in remembered.get_many(remembered.names()) if view is not None]

        return seen_views
    return list


def build_sources(policy: Policy, cluster: ClusterState | None, seen: SeenNodes | None) -> LoadState | None:
    """The policy's metric sources (not started), or None if it has none."""

    def client() -> KubeClient:
        assert cluster is not None
        return KubeClient(cluster.config, timeout=cluster.options.api_timeout)

    return build_load(policy, node_lister(cluster, seen), client if cluster is not None else None)


def decision_log_options(settings: Settings) -> DecisionLogOptions:
    """The settings' ``--decision-*`` flags."""
    level = settings.decision_log
    return DecisionLogOptions(
        level="off" if level == "off" else "detail" if level == "detail" else "summary",
        sample=settings.decision_sample,
        max_nodes=settings.decision_max_nodes,
        observed_tables=settings.status_tables if settings.admin_port else 0.0,
    )


def build_events(settings: Settings, policy: Policy, cluster: ClusterState | None) -> EventRecorder | None:
    """The Event poster ``--events`` asks for (not started), or None."""
    if not settings.events or cluster is None:
        return None
    import socket

    return EventRecorder(
        KubeClient(cluster.config, timeout=cluster.options.api_timeout),
        instance=socket.gethostname(),  # the pod's name in a cluster
        expects_prioritize=calls_both_verbs(policy),
    )


def _rebuild(
    settings: Settings, cluster: ClusterState | None, seen: SeenNodes | None, observers: Sequence[Observer]
) -> Rebuild:
    """How a service is built for a policy on this process's cluster state: at start-up and
    at each policy reload (extender.web.reloading)."""

    def service(policy: Policy, load: LoadState | None) -> ExtenderService:
        return ExtenderService(
            policy,
            nodes=cluster.nodes if cluster else None,
            seen=seen,
            fetcher=cluster.node_lookup if cluster else None,
            binder=cluster.binder if cluster else None,
            options=ServiceOptions(
                unknown_nodes="pass" if settings.unknown_nodes == "pass" else "fail",
                preempt_unknown_nodes="keep" if settings.preempt_unknown_nodes == "keep" else "drop",
            ),
            load=ClusterLoad(
                samples=load.store if load else None,
                placements=cluster.binds if cluster else None,
            ),
            pod_requests=cluster.binds.requests if cluster and cluster.binder and cluster.binds else None,
            decision_log=decision_log_options(settings),
            observers=observers,
        )

    return Rebuild(
        sources=lambda policy: build_sources(policy, cluster, seen),
        service=service,
        missing=lambda policy: missing_access(settings, cluster, policy),
    )


def _current_sources(extensions: dict[str, Any]) -> dict[str, Any]:
    """/healthz's metric sources: the running ones (a reload may replace them)."""
    load: LoadState | None = extensions.get("extender.load")
    return load.health() if load is not None else {}


def create_app(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    service: ExtenderService | None = None,
    cluster: ClusterState | None = None,
    readiness: Readiness | None = None,
    draining: Callable[[], bool] | None = None,
    observers: Sequence[Observer] = (),
    decisions: DecisionStore | None = None,
) -> Flask:
    """Build the WSGI app.

    ``settings`` default to the environment (``EXTENDER_*``); the policy is loaded from
    ``settings.policy`` (the embedded default if unset) unless ``policy`` or a whole
    ``service`` is given. When the settings ask for caches, or the policy enables bind, the
    cluster state is built (unless given) and started: call this in the serving process.
    ``draining`` says when the server has been told to stop: ``/readyz`` then answers 503
    while in-flight requests finish. Raises :class:`~extender.policy.PolicyError` on an
    invalid policy. ``observers`` get every call's decision record (see
    :class:`~extender.decisions.DecisionLog`) when the service is built here. ``decisions``
    keeps the decisions the status page shows (default: with ``--admin-port``, the ring files
    under the runtime dir, else none).
    """
    settings = settings or Settings.from_env()
    if decisions is None and settings.admin_port:
        decisions = decision_store(settings.runtime_dir, settings.status_decisions)
    events: EventRecorder | None = None
    health: Health = _no_caches
    load: LoadState | None = None
    rebuild: Rebuild | None = None
    if service is None:
        policy = policy or load_policy(settings.policy)
        cluster = cluster or build_cluster(settings, policy)
        seen = SeenNodes(settings.preempt_seen_nodes) if settings.preempt_seen_nodes > 0 else None
        events = build_events(settings, policy, cluster)
        every = (metrics.observe_decision, *observers, *(o for o in (decisions, events) if o is not None))
        rebuild = _rebuild(settings, cluster, seen, every)
        load = rebuild.sources(policy)
        service = rebuild.service(policy, load)
    elif decisions is not None:
        service.decisions.observers = (*service.decisions.observers, decisions)
    if cluster is not None:
        cluster.start()
        readiness = readiness or cluster.readiness
        health = cluster.health
        log.info("Kubernetes API: %s; caches: %s", cluster.config.source, ", ".join(r.name for r in cluster.reflectors) or "none")
    if load is not None:
        load.start()  # after the caches: the first fetch maps series through their nodes
    if events is not None:
        events.start()
    app = Flask("extender")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Every method a route does not take is a JSON 405 naming the one it does; Flask's
    # automatic OPTIONS answer would list the wrong-method handlers as allowed.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["extender.service"] = service
    app.extensions["extender.cluster"] = cluster
    #: the metric sources' refreshers: stop() them where the cluster state is stopped
    app.extensions["extender.load"] = load
    endpoint = VerbEndpoint(app.extensions, settings.normalised_prefix, settings.max_body_bytes)
    #: the verbs as bytes in, bytes out: the Flask route and the serving worker's fast path
    app.extensions["extender.verbs"] = endpoint
    app.register_blueprint(verbs_blueprint(endpoint))
    ready = _unless_draining(readiness or _always_ready, draining)
    probes = Probes(ready, health, partial(_current_sources, app.extensions))
    #: the probes' answers: the Flask routes and the serving worker's fast path
    app.extensions["extender.probes"] = probes
    app.register_blueprint(probes_blueprint(probes))
    app.register_blueprint(openapi_blueprint(settings.normalised_prefix))
    app.register_blueprint(metrics_blueprint())
    metrics.policy_loaded(service.policy.digest, reload=False)
    # -- policy hot reload: started by the serving process (extender.server), woken by SIGHUP
    status = ReloadStatus(digest=service.policy.digest)
    app.extensions["extender.reload_status"] = status
    if rebuild is not None:
        watch = PolicyFileWatch(settings.policy, service.policy.digest) if settings.policy else None
        reloader = PolicyReloader(
            app.extensions, rebuild, status, watch, settings.policy_poll_seconds, settings.runtime_dir
        )
        app.extensions["extender.reloader"] = reloader
    status.listeners.append(metrics.policy_reloaded)
    #: the status page's decisions and the Event poster (None when off)
    app.extensions["extender.decisions"] = decisions
    app.extensions["extender.events"] = events
    if decisions is not None:
        app.register_blueprint(status_blueprint(decisions, probes))
    if events is not None:
        recorder = events

        def events_follow(attempt: ReloadAttempt) -> None:
            if attempt.ok:
                recorder.follow(app.extensions["extender.service"].policy)

        status.listeners.append(events_follow)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
    return app
