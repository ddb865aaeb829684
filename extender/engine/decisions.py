"""What the engine decided, with enough detail to explain it (logs, debugging, tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule raised while evaluating: how often, the first message, and what onError did."""

    rule: str
    count: int
    first_message: str
    action: str  # "allowed" | "denied" | "neutral score" | "lowest score"


@dataclass(frozen=True)
class FilterDecision:
    """Filter outcome. ``passed`` holds indices into the node sequence given to the engine."""

    in_scope: bool
    passed: Sequence[int]
    failed: Mapping[str, str] = field(default_factory=dict)
    unresolvable: Mapping[str, str] = field(default_factory=dict)
    #: shadow rule name -> {node name: reason it would have been rejected}
    shadow_rejections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    failures: Sequence[RuleFailure] = ()


@dataclass(frozen=True)
class ScoreDecision:
    """Prioritize outcome: one integer score (0..10) per input node, in input order."""

    in_scope: bool
    scores: Sequence[int]
    #: rule name -> normalised score per node (enforced rules), for explaining a ranking
    breakdown: Mapping[str, Sequence[float]] = field(default_factory=dict)
    #: shadow rule name -> final scores per node had the rule been enforced
    shadow_scores: Mapping[str, Sequence[int]] = field(default_factory=dict)
    failures: Sequence[RuleFailure] = ()


@dataclass(frozen=True, slots=True)
class Victims:
    """Pods the scheduler proposes to evict from one node (by UID), and PDBs that breaks."""

    uids: tuple[str, ...]
    num_pdb_violations: int = 0


@dataclass(frozen=True)
class PreemptDecision:
    """Preempt outcome: candidate nodes kept (with their victims) and why others were dropped."""

    in_scope: bool
    kept: Mapping[str, Victims]
    dropped: Mapping[str, str] = field(default_factory=dict)
    #: nodes the engine could not evaluate (not in the request nor the node cache); kept
    unevaluated: Sequence[str] = ()
    failures: Sequence[RuleFailure] = ()
