"""The validated policy as the engine consumes it: pod scope, configured rules, bind settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from extender.k8s.selectors import LabelSelector
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


@dataclass(frozen=True)
class Policy:
    """Everything the engine needs, validated at construction (see :mod:`extender.policy`)."""

    scope: PodScope = field(default_factory=PodScope)
    predicates: Sequence[ConfiguredPredicate] = ()
    priorities: Sequence[ConfiguredPriority] = ()
    bind_enabled: bool = False
    source: str = "<inline>"
    digest: str = ""
