"""The running load machinery of one worker: a source per ``policy.sources`` entry, the
metric store they fill, and one refresher thread each.

Sources never affect readiness: a replica whose sources fail answers from its last samples,
and each rule's ``onStale`` says what stale data means; /healthz says why they are stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from extender.engine import ConfiguredRule, Policy
from extender.engine.model import SourceSpec
from extender.kube.client import KubeClient
from extender.load.metrics_server import MetricsServerSource
from extender.load.node_annotations import NodeAnnotationsSource
from extender.load.prometheus import PrometheusSource
from extender.load.refresher import MetricStore, Refresher
from extender.load.source import MetricSource, NodeLister

log = logging.getLogger("extender.load")

SourceFactory = Callable[[SourceSpec, NodeLister], MetricSource]
#: how a source gets its own API client (its own connection, like every cache)
ClientFactory = Callable[[], KubeClient]


def uses_metrics_api(policy: Policy) -> bool:
    """Whether a source of this policy reads the Kubernetes API (metrics-server)."""
    return any(spec.type == "metrics-server" for spec in policy.sources.values())


def source_factories(api_client: ClientFactory | None) -> dict[str, SourceFactory]:
    """The source class for each ``type`` (the metrics-server one bound to an API client)."""

    def metrics_server(spec: SourceSpec, nodes: NodeLister) -> MetricSource:
        if api_client is None:
            raise ValueError(f"source {spec.name}: metrics-server needs the Kubernetes API configured")
        return MetricsServerSource(spec, nodes, api_client())

    factories: dict[str, SourceFactory] = {
        "metrics-server": metrics_server,
        "node-annotations": NodeAnnotationsSource,
        "prometheus": PrometheusSource,
    }
    return factories


def rule_readers(policy: Policy) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Per source and key, the enabled rules that read it and their ``onStale``."""
    readers: dict[str, dict[str, list[tuple[str, str]]]] = {}
    rules: list[ConfiguredRule[Any]] = [*policy.predicates, *policy.priorities]
    for configured in rules:
        rule = configured.rule
        on_stale = getattr(rule, "on_stale", None)
        if on_stale is None and isinstance(rule.params, Mapping):
            on_stale = rule.params.get("on_stale")
        for ref in rule.metrics():
            readers.setdefault(ref.source, {}).setdefault(ref.key, []).append((configured.name, str(on_stale or "?")))
    return readers


class LoadState:
    """Sources, store and refreshers; :meth:`start` in the serving process, :meth:`stop` at exit."""

    def __init__(self, policy: Policy, nodes: NodeLister, factories: Mapping[str, SourceFactory]) -> None:
        self.store = MetricStore({name: spec.max_age for name, spec in policy.sources.items()})
        readers = rule_readers(policy)
        self.refreshers: list[Refresher] = []
        for name, spec in policy.sources.items():
            factory = factories.get(spec.type)
            if factory is None:
                raise ValueError(f"source {name}: type {spec.type} is not available in this build")
            self.refreshers.append(Refresher(factory(spec, nodes), self.store, nodes, readers.get(name, {})))

    def start(self) -> None:
        for refresher in self.refreshers:
            refresher.start()
        if self.refreshers:
            described = (
                f"{r.name} ({r.source.spec.type}, every {r.source.spec.refresh_interval:g}s)" for r in self.refreshers
            )
            log.info("metric sources: %s", ", ".join(described))

    def stop(self) -> None:
        for refresher in self.refreshers:
            refresher.stop()

    def health(self) -> dict[str, Any]:
        """Per source, for /healthz (never part of readiness)."""
        return {r.name: r.health() for r in self.refreshers}


def build_load(
    policy: Policy,
    nodes: NodeLister,
    api_client: ClientFactory | None = None,
    factories: Mapping[str, SourceFactory] | None = None,
) -> LoadState | None:
    """The load machinery for the policy's sources (not started), or None without sources."""
    if not policy.sources:
        return None
    return LoadState(policy, nodes, factories if factories is not None else source_factories(api_client))
