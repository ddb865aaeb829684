"""kube-scheduler's extender protocol, the replies: decisions -> ExtenderFilterResult and friends.

Keys are Go field names (PascalCase), as kube-scheduler's untagged extender types expect;
scores and PDB violation counts are JSON integers (a float fails Go's int64 decode).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from msgspec import Raw, Struct

from extender.codec.common import encode_json
from extender.engine.decisions import Victims


# -- reply types ------------------------------------------------------------------------------


class _NodeListReply(Struct, gc=False):
    metadata: dict[str, Any]
    items: Sequence[Raw]


class _FilterReply(Struct, gc=False):
    Nodes: _NodeListReply | None
    NodeNames: Sequence[str] | None
    FailedNodes: Mapping[str, str]
    FailedAndUnresolvableNodes: Mapping[str, str]
    Error: str


class _HostPriority(Struct, gc=False, array_like=False):
    Host: str
    Score: int


class _MetaPodReply(Struct, gc=False):
    UID: str


class _MetaVictimsReply(Struct, gc=False):
    Pods: list[_MetaPodReply]
    NumPDBViolations: int


class _PreemptReply(Struct, gc=False):
    NodeNameToMetaVictims: dict[str, _MetaVictimsReply]


class _BindReply(Struct, gc=False):
    Error: str


# -- encoders -------------------------------------------------------------------------------


def encode_filter_reply(
    *,
    node_items: Sequence[Raw] | None = None,
    node_names: Sequence[str] | None = None,
    failed: Mapping[str, str] | None = None,
    unresolvable: Mapping[str, str] | None = None,
    error: str = "",
) -> bytes:
    """``ExtenderFilterResult``. Full-node mode must answer ``Nodes`` (passing nodes echoed
    byte for byte); names mode answers ``NodeNames``. Both null means "no node passes"."""
    reply = _FilterReply(
        Nodes=_NodeListReply(metadata={}, items=node_items) if node_items is not None else None,
        NodeNames=node_names,
        FailedNodes=failed or {},
        FailedAndUnresolvableNodes=unresolvable or {},
        Error=error,
    )
    return encode_json(reply)


def encode_host_priorities(scores: Iterable[tuple[str, int]]) -> bytes:
    """``HostPriorityList``: a bare JSON array of ``{"Host", "Score"}`` with integer scores."""
    return encode_json([_HostPriority(host, int(score)) for host, score in scores])


def encode_preempt_reply(kept: Mapping[str, Victims]) -> bytes:
    """``ExtenderPreemptionResult``: always ``NodeNameToMetaVictims`` (victim UIDs)."""
    return encode_json(
        _PreemptReply(
            {
                node: _MetaVictimsReply([_MetaPodReply(uid) for uid in victims.uids], victims.num_pdb_violations)
                for node, victims in kept.items()
            }
        )
    )


def encode_bind_reply(error: str = "") -> bytes:
    """``ExtenderBindingResult``."""
    return encode_json(_BindReply(error))


