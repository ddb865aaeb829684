"""The validated policy as the engine consumes it: pod scope, configured rules, bind settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from extender.k8s.selectors import LabelSelector
from extender.measured import MetricRef
from extender.sdk.rules import Predicate, Priority, Rule
from extender.view import PodView

Mode = Literal["enforce", "shadow"]
OnError = Literal["allow", "deny"]
R = TypeVar("R", bound=Rule)


@dataclass(frozen=True)
class PodScope:
    """Which pods the policy applies to; the others pass untouched.

    Empty ``include_namespaces`` means every namespace. ``exclude_owner_kinds`` defaults
    to DaemonSet in the policy schema: a DaemonSet pod is pinned to its node and must land
    there even if the node is not Ready yet (the CNI pod is what makes it Ready).
    """

    include_namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    exclude_owner_kinds: frozenset[str] = frozenset()

    def matches(self, pod: PodView) -> bool:
        if self.include_namespaces and pod.namespace not in self.include_namespaces:
            return False
        if pod.namespace in self.exclude_namespaces:
            return False
        if self.exclude_owner_kinds:
            owner = pod.owner
            if owner is not None and owner.kind in self.exclude_owner_kinds:
                return False
        return self.pod_selector.matches(pod.labels)


@dataclass(frozen=True)
class ConfiguredRule(Generic[R]):
    """A rule instance with the policy settings that surround it."""

    name: str
    rule: R
    mode: Mode = "enforce"
    on_error: OnError = "deny"
    weight: float = 1.0

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"


ConfiguredPredicate = ConfiguredRule[Predicate]
ConfiguredPriority = ConfiguredRule[Priority]


SourceType = Literal["prometheus", "metrics-server", "node-annotations"]


@dataclass(frozen=True)
class SourceSpec:
    """A metric source as the policy's ``sources:`` declares it (validated; not yet running).

    ``options`` holds the type's own settings as its schema in ``extender.policy.sources``
    loaded them (e.g. Prometheus' URL, auth and node mapping). ``keys`` are the metrics the
    policy's rules read from it: its refresher fetches exactly these.
    """

    name: str
    type: SourceType
    refresh_interval: float = 15.0
    max_age: float = 120.0
    timeout: float = 2.0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    """Everything the engine needs, validated at construction (see :mod:`extender.policy`)."""

    scope: PodScope = field(default_factory=PodScope)
    predicates: Sequence[ConfiguredPredicate] = ()
    priorities: Sequence[ConfiguredPriority] = ()
    bind_enabled: bool = False
    #: metric sources by name (only those some enabled rule reads are started)
    sources: Mapping[str, SourceSpec] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "<inline>"
    digest: str = ""

    @property
    def verbs(self) -> dict[str, str]:
        """The KubeSchedulerConfiguration verb keys this policy needs, with our verb names.

        kube-scheduler calls every verb it is given for every pod the extender is interested
        in: a policy without priorities needs no ``prioritizeVerb`` (one call per pod instead
        of two), one without predicates no ``filterVerb`` and no ``preemptVerb`` (preempt only
        removes candidates the predicates reject), one without bind no ``bindVerb``.
        """
        verbs: dict[str, str] = {}
        if self.predicates:
            verbs["filterVerb"] = "filter"
        if self.priorities:
            verbs["prioritizeVerb"] = "prioritize"
        if self.predicates:
            verbs["preemptVerb"] = "preempt"
        if self.bind_enabled:
            verbs["bindVerb"] = "bind"
        return verbs

    @property
    def metrics(self) -> frozenset[MetricRef]:
        """Every metric the policy's rules read."""
        rules: list[ConfiguredRule[Any]] = [*self.predicates, *self.priorities]
        return frozenset(ref for rule in rules for ref in rule.rule.metrics())
