"""The policy engine: turns a validated policy plus a pod and nodes into decisions."""

from extender.engine.decisions import (
    FilterDecision,
    PreemptDecision,
    RuleFailure,
    ScoreDecision,
    UnknownCandidates,
    Victims,
)
from extender.engine.engine import Engine
from extender.engine.model import ConfiguredPredicate, ConfiguredPriority, ConfiguredRule, Policy, PodScope, SourceSpec

__all__ = [
    "ConfiguredPredicate",
    "ConfiguredPriority",
    "ConfiguredRule",
    "Engine",
    "FilterDecision",
    "PodScope",
    "Policy",
    "PreemptDecision",
    "RuleFailure",
    "ScoreDecision",
    "UnknownCandidates",
    "SourceSpec",
    "Victims",
]
