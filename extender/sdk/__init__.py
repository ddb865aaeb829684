"""The rule SDK: everything a predicate or priority author imports.

    from extender.sdk import Predicate, Rejection, predicate

See README "Writing a rule".
"""

from extender.sdk.registry import ENTRY_POINT_GROUP, UnknownRuleError, known_types, predicate, priority, resolve
from extender.measured import InFlight, LoadView, MetricRef, OnStale, Sample, StaticLoad, fresh
from extender.sdk.rules import NEUTRAL, Context, Neutral, NoParams, Predicate, Priority, Rejection, Rule
from extender.view import Condition, NodeSystemInfo, NodeView, OwnerReference, PodView, Taint, Toleration

__all__ = [
    "ENTRY_POINT_GROUP",
    "Condition",
    "Context",
    "InFlight",
    "LoadView",
    "MetricRef",
    "NEUTRAL",
    "Neutral",
    "OnStale",
    "Sample",
    "StaticLoad",
    "fresh",
    "NoParams",
    "NodeSystemInfo",
    "NodeView",
    "OwnerReference",
    "PodView",
    "Predicate",
    "Priority",
    "Rejection",
    "Rule",
    "Taint",
    "Toleration",
    "UnknownRuleError",
    "known_types",
    "predicate",
    "priority",
    "resolve",
]
