"""What the engine decided, with enough detail to explain it (logs, debugging, tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from extender.engine.attribution import ReasonRules
from extender.sdk.rules import Rejection

#: what preempt does with a candidate it has no view of: keep it (kube-scheduler may evict
#: its victims although the policy rejects the node) or drop it (no preemption there)
UnknownCandidates = Literal["keep", "drop"]
NO_VICTIMS = "no victims"
UNKNOWN_CANDIDATE = "node unknown to the extender"


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
    #: every rejected node of ``failed`` and ``unresolvable``: (name, rejection, the enforced
    #: rule that rejected it), for counting rejections per rule (decision records, metrics)
    rejections: Sequence[tuple[str, Rejection, str]] = ()
    #: the engine's reason -> rule registry: attributes ``failed``/``unresolvable`` by reason
    reason_rules: ReasonRules | None = None


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
    #: rule name -> raw score per node (enforced rules; the columns the scores came from, kept
    #: by reference: free). Entries may be None, NEUTRAL or a failure marker (see outcomes.FAILED)
    raw: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    #: rule name -> (min, max) of its raw column, when every entry is a number (else empty)
    bounds: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Victims:
    """Pods the scheduler proposes to evict from one node (by UID), and PDBs that breaks."""

    uids: tuple[str, ...]
    num_pdb_violations: int = 0


@dataclass(frozen=True)
class PreemptDecision:
    """Preempt outcome: candidate nodes kept (with their victims), and why the others were not."""

    in_scope: bool
    kept: Mapping[str, Victims]
    #: candidates the enforced predicates reject: the first rejection's reason
    rejected: Mapping[str, str] = field(default_factory=dict)
    #: the same candidates: the enforced rule that rejected each
    rejected_by: Mapping[str, str] = field(default_factory=dict)
    #: candidates the scheduler proposed no victims on (kube-scheduler refuses those back)
    without_victims: Sequence[str] = ()
    #: candidates with victims that could not be evaluated (no view of the node anywhere);
    #: in ``kept`` if ``unknown_kept``, else dropped
    unknown: Sequence[str] = ()
    unknown_kept: bool = True
    failures: Sequence[RuleFailure] = ()

    @property
    def dropped(self) -> dict[str, str]:
        """Every candidate left out of the reply, with why."""
        dropped = dict.fromkeys(self.without_victims, NO_VICTIMS)
        dropped.update(self.rejected)
        if not self.unknown_kept:
            dropped.update(dict.fromkeys(self.unknown, UNKNOWN_CANDIDATE))
        return dropped
