"""kube-scheduler's extender protocol, the requests: ExtenderArgs and friends -> views.

kube-scheduler's extender types carry no JSON tags, so their keys are Go field names
(PascalCase: ``Pod``, ``Nodes``, ``NodeNames``, ``FailedNodes``...) while the embedded
Kubernetes objects use their normal camelCase tags. The fast path decodes exactly that
with msgspec, reading only the fields rules use and keeping each node's original bytes
(``msgspec.Raw``) so filter can echo passing nodes without re-encoding them. Requests
whose envelope keys are spelled differently (``pod``, ``nodeNames``: humans with curl)
take a lenient path that matches envelope keys case-insensitively, as Go's decoder does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from extender.codec.common import Body, WireError, decode, is_null, locate, too_deep
from extender.codec.duplicates import FULL_CHECK_BYTES, FULL_NODE_CHECK_BYTES, check_unique_keys
from extender.codec.objects import Int64, Name, Namespace, Node, decode_nodes, decode_pod, node_view
from extender.engine.decisions import Victims
from extender.view import NodeView, PodView


# -- extender envelopes, fast path (exact PascalCase keys) ----------------------------------


class _NodeList(Struct, gc=False):
    items: list[Raw] | None = None


# msgspec cannot put Raw in a union: an empty Raw stands for "key absent".
_ABSENT = Raw()


class _ExtenderArgs(Struct, gc=False):
    Pod: Raw = _ABSENT
    Nodes: _NodeList | list[Raw] | None | UnsetType = UNSET
    NodeNames: list[Name] | None | UnsetType = UNSET


class _TypedNodeList(Struct, gc=False):
    items: list[Node] | None = None


class _ScoringArgs(Struct, gc=False):
    """Prioritize needs no node bytes back: one typed pass is ~2.5 ms cheaper per 1000 nodes
    than capturing each node's bytes and decoding them one by one."""

    Pod: Raw = _ABSENT
    Nodes: _TypedNodeList | list[Node] | None | UnsetType = UNSET
    NodeNames: list[Name] | None | UnsetType = UNSET


class _VictimPodMeta(Struct, gc=False):
    uid: str = ""


class _VictimPod(Struct, gc=False):
    metadata: _VictimPodMeta | None = None


class _Victims(Struct, gc=False):
    Pods: list[_VictimPod] | None = None
    NumPDBViolations: Int64 = 0


class _MetaPod(Struct, gc=False):
    UID: str = ""


class _MetaVictims(Struct, gc=False):
    Pods: list[_MetaPod] | None = None
    NumPDBViolations: Int64 = 0


class _PreemptionArgs(Struct, gc=False):
    Pod: Raw = _ABSENT
    NodeNameToVictims: dict[Name, _Victims | None] | None | UnsetType = UNSET
    NodeNameToMetaVictims: dict[Name, _MetaVictims | None] | None | UnsetType = UNSET


class _BindingArgs(Struct, gc=False):
    PodName: Name | UnsetType = UNSET
    PodNamespace: Namespace | UnsetType = UNSET
    PodUID: str | UnsetType = UNSET
    Node: Name | UnsetType = UNSET


# -- decoded requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExtenderArgs:
    """A filter/prioritize request. Exactly one of ``node_items``/``node_names`` is set."""

    pod: PodView
    #: full-node mode: each node's original JSON, in request order
    node_items: Sequence[Raw] | None
    #: names mode (``nodeCacheCapable: true``)
    node_names: Sequence[str] | None

    @property
    def full_nodes(self) -> bool:
        return self.node_items is not None


@dataclass(frozen=True)
class ScoringArgs:
    """A prioritize request. Exactly one of ``nodes``/``node_names`` is set."""

    pod: PodView
    #: full-node mode: the nodes, decoded
    nodes: Sequence[NodeView] | None
    node_names: Sequence[str] | None


@dataclass(frozen=True)
class PreemptionArgs:
    """A preempt request, victims reduced to UIDs whichever form the scheduler sent."""

    pod: PodView
    candidates: Mapping[str, Victims]
    #: True if the scheduler sent ``NodeNameToMetaVictims`` (names mode)
    meta: bool


@dataclass(frozen=True)
class BindingArgs:
    """A bind request."""

    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str


# -- requests -------------------------------------------------------------------------------

#: each request's envelope keys (Go field names; Go's decoder matches them case-insensitively)
_ARGS_KEYS = ("Pod", "Nodes", "NodeNames")
_PREEMPTION_KEYS = ("Pod", "NodeNameToVictims", "NodeNameToMetaVictims")
_BINDING_KEYS = ("PodName", "PodNamespace", "PodUID", "Node")


def _lenient_envelope(body: Body, canonical: Iterable[str]) -> dict[str, Raw]:
    """Top-level keys matched case-insensitively to ``canonical`` (Go's decoder does the same)."""
    fields = decode(body, dict[str, Raw], "body")
    names = {name.lower(): name for name in canonical}
    envelope: dict[str, Raw] = {}
    for key, value in fields.items():
        name = names.get(key.lower())
        if name is not None:
            envelope[name] = value
    return envelope


def _require_pod(raw: Raw) -> PodView:
    if len(raw) == 0:
        raise WireError("Pod: required (the pod being scheduled)")
    if is_null(raw):
        raise WireError("Pod: must be a Pod object, got null")
    return decode_pod(raw)


def decode_extender_args(body: Body) -> ExtenderArgs:
    """Decode a filter or prioritize request body. A full-node body must be valid UTF-8
    throughout, not only where it is decoded: filter echoes its Node objects' bytes."""
    args, envelope = _extender_args(body)
    _check_keys(body, envelope, _ARGS_KEYS)
    if args.full_nodes and len(body) > FULL_NODE_CHECK_BYTES:  # smaller ones were read whole
        _check_utf8(body)
    return args


def _check_utf8(body: Body) -> None:
    # JSON is UTF-8 (RFC 8259). msgspec validates the strings it decodes but skips the rest of
    # a node, which filter echoes; 0.56 ms per 7 MB (1000 nodes).
    try:
        str(body, "utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"request body: invalid UTF-8 at byte {exc.start}") from None


def _extender_args(body: Body) -> tuple[ExtenderArgs, _ExtenderArgs]:
    args = decode(body, _ExtenderArgs, "body")
    if len(args.Pod) == 0 or (args.Nodes is UNSET and args.NodeNames is UNSET):
        envelope = _lenient_envelope(body, _ARGS_KEYS)
        args = _ExtenderArgs(
            Pod=envelope.get("Pod", _ABSENT),
            Nodes=decode(envelope["Nodes"], _NodeList | list[Raw] | None, "Nodes") if "Nodes" in envelope else UNSET,  # type: ignore[arg-type]
            NodeNames=decode(envelope["NodeNames"], list[Name] | None, "NodeNames") if "NodeNames" in envelope else UNSET,  # type: ignore[arg-type]
        )
    pod = _require_pod(args.Pod)
    nodes = args.Nodes if not isinstance(args.Nodes, UnsetType) else None
    names = args.NodeNames if not isinstance(args.NodeNames, UnsetType) else None
    if nodes is not None:
        items = nodes.items if isinstance(nodes, _NodeList) else nodes
        return ExtenderArgs(pod=pod, node_items=items or [], node_names=None), args
    if names is not None:
        return ExtenderArgs(pod=pod, node_items=None, node_names=names), args
    raise WireError("Nodes or NodeNames: one of them must be set (both are missing or null)")


def decode_scoring_args(body: Body) -> ScoringArgs:
    """Decode a prioritize request, nodes straight into views (no bytes kept)."""
    args = decode(body, _ScoringArgs, "body")
    if len(args.Pod) == 0 or (args.Nodes is UNSET and args.NodeNames is UNSET):
        lenient, envelope = _extender_args(body)
        _check_keys(body, envelope, _ARGS_KEYS)
        items = lenient.node_items
        return ScoringArgs(lenient.pod, decode_nodes(items) if items is not None else None, lenient.node_names)
    pod = _require_pod(args.Pod)
    views = _typed_views(args)
    if views is not None:
        _check_keys(body, args, _ARGS_KEYS)
        if len(body) > FULL_NODE_CHECK_BYTES:  # smaller ones were read whole
            _check_utf8(body)
        return ScoringArgs(pod, views, None)
    if args.NodeNames is not None and not isinstance(args.NodeNames, UnsetType):
        _check_keys(body, args, _ARGS_KEYS)
        return ScoringArgs(pod, None, args.NodeNames)
    raise WireError("Nodes or NodeNames: one of them must be set (both are missing or null)")


def _check_keys(body: Body, args: _ExtenderArgs | _ScoringArgs | _PreemptionArgs | None, keys: tuple[str, ...]) -> None:
    """Reject repeated keys (``keys``: the envelope's, which match case-insensitively):
    every object of a body up to FULL_CHECK_BYTES (FULL_NODE_CHECK_BYTES with Node objects:
    a hand-written request of a few nodes), the Pod object of a larger one (the Node
    objects of kube-scheduler's full-node requests are echoed as received: scanning the 8
    recorded ones alone cost 0.37 ms, all but 10 us of the request's decoding).

    A names-mode envelope exactly as kube-scheduler writes it is proven free of them by its
    length, so only its Pod is scanned: for 5000 names ~20 us plus ~25 us to sum their
    lengths, instead of ~200 us for the whole body.
    """
    pod = args.Pod if args is not None else _ABSENT
    limit = FULL_NODE_CHECK_BYTES if _full_nodes(args) else FULL_CHECK_BYTES
    if len(pod) and (len(body) > limit or _canonical_names_envelope(body, args)):
        check_unique_keys(pod, "Pod")
    elif len(body) <= limit:
        check_unique_keys(body, "body", keys)


def _full_nodes(args: object) -> bool:
    """Whether a filter/prioritize request carries Node objects (full-node mode)."""
    if not isinstance(args, (_ExtenderArgs, _ScoringArgs)):
        return False
    return args.Nodes is not None and not isinstance(args.Nodes, UnsetType)


def _canonical_names_envelope(body: Body, args: object) -> bool:
    """Whether ``body`` is exactly ``{"Pod":…,"Nodes":null,"NodeNames":[…]}`` (any key
    order, ``Nodes`` optional) with no whitespace and no escapes in the names.

    That text is the shortest any JSON object holding these decoded values can be: an
    escape, a space or any further pair (a repeated key) would make the body longer. So a
    body of exactly that length repeats no key outside the Pod.
    """
    if not isinstance(args, (_ExtenderArgs, _ScoringArgs)) or not isinstance(args.NodeNames, list):
        return False
    names = args.NodeNames
    size = len('{"Pod":,"NodeNames":[]}') + len(args.Pod) + len("".join(names)) + 3 * len(names) - (1 if names else 0)
    if args.Nodes is None:
        size += len(',"Nodes":null')
    elif not isinstance(args.Nodes, UnsetType):
        return False
    return size == len(body)


def _typed_views(args: _ScoringArgs) -> list[NodeView] | None:
    if args.Nodes is None or isinstance(args.Nodes, UnsetType):
        return None
    nodes = (args.Nodes.items if isinstance(args.Nodes, _TypedNodeList) else args.Nodes) or []
    views = [node_view(node) for node in nodes]
    for index, view in enumerate(views):
        if not view.name:
            raise WireError(f"Nodes.items[{index}].metadata.name: required")
    return views


def decode_node_views(body: Body, args: ExtenderArgs) -> list[NodeView]:
    """Views of a full-node filter request's nodes, in the order of ``args.node_items``.

    A second, typed pass over the body is cheaper than decoding each captured item on its
    own (measured: 7.1 vs 8.7 us per node); requests whose envelope keys are spelled
    otherwise (the lenient path) decode the captured items instead.
    """
    items = args.node_items or []
    typed = decode(body, _ScoringArgs, "body")
    views = _typed_views(typed) if len(typed.Pod) else None
    if views is None or len(views) != len(items):
        return decode_nodes(items)
    return views


def _victims_from_pods(victims: _Victims | None) -> Victims:
    if victims is None or not victims.Pods:
        return Victims((), victims.NumPDBViolations if victims is not None else 0)
    uids = tuple([p.metadata.uid for p in victims.Pods if p.metadata is not None and p.metadata.uid])
    return Victims(uids, victims.NumPDBViolations)


def _victims_from_meta(victims: _MetaVictims | None) -> Victims:
    if victims is None or not victims.Pods:
        return Victims((), victims.NumPDBViolations if victims is not None else 0)
    return Victims(tuple([p.UID for p in victims.Pods if p.UID]), victims.NumPDBViolations)


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` (decoded leniently) validated as ``kind``, bounds included."""
    if value is UNSET:
        return UNSET
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise WireError(locate(str(exc), key)) from None
    except RecursionError:
        raise too_deep(key) from None


def _lenient_preemption(body: Body) -> _PreemptionArgs:
    """Case-insensitive preempt envelope, down to the Victims and MetaPod keys."""
    envelope = _lenient_envelope(body, _PREEMPTION_KEYS)

    def victims_map(key: str, victims_keys: tuple[str, ...], pod_keys: tuple[str, ...]) -> Any:
        raw = envelope.get(key)
        if raw is None:
            return UNSET
        nodes: dict[str, dict[str, Any]] | None = decode(raw, dict[str, dict[str, Any]] | None, key)  # type: ignore[arg-type]
        if nodes is None:
            return None
        canonical = {k.lower(): k for k in victims_keys}
        pod_canonical = {k.lower(): k for k in pod_keys}
        fixed: dict[str, Any] = {}
        for node, victims in nodes.items():
            entry = {canonical.get(k.lower(), k): v for k, v in victims.items()}
            if isinstance(entry.get("Pods"), list):
                entry["Pods"] = [
                    {pod_canonical.get(k.lower(), k): v for k, v in p.items()} if isinstance(p, dict) else p
                    for p in entry["Pods"]
                ]
            fixed[node] = entry
        return fixed

    return _PreemptionArgs(
        Pod=envelope.get("Pod", _ABSENT),
        NodeNameToVictims=_convert(
            victims_map("NodeNameToVictims", ("Pods", "NumPDBViolations"), ()),
            dict[Name, _Victims | None] | None,
            "NodeNameToVictims",
        ),
        NodeNameToMetaVictims=_convert(
            victims_map("NodeNameToMetaVictims", ("Pods", "NumPDBViolations"), ("UID",)),
            dict[Name, _MetaVictims | None] | None,
            "NodeNameToMetaVictims",
        ),
    )


def decode_preemption_args(body: Body) -> PreemptionArgs:
    """Decode a preempt request; full victim pods and meta victims both become UIDs."""
    args = decode(body, _PreemptionArgs, "body")
    if len(args.Pod) == 0 or (args.NodeNameToVictims is UNSET and args.NodeNameToMetaVictims is UNSET):
        args = _lenient_preemption(body)
    pod = _require_pod(args.Pod)
    _check_keys(body, args, _PREEMPTION_KEYS)
    meta = args.NodeNameToMetaVictims
    full = args.NodeNameToVictims
    if isinstance(meta, dict):
        return PreemptionArgs(pod, {n: _victims_from_meta(v) for n, v in meta.items()}, meta=True)
    if isinstance(full, dict):
        return PreemptionArgs(pod, {n: _victims_from_pods(v) for n, v in full.items()}, meta=False)
    raise WireError("NodeNameToVictims or NodeNameToMetaVictims: one of them must be set (both are missing or null)")


def decode_binding_args(body: Body) -> BindingArgs:
    """Decode a bind request; every field is required."""
    args = decode(body, _BindingArgs, "body")
    names = _BINDING_KEYS
    if any(getattr(args, n) is UNSET for n in names):
        envelope = _lenient_envelope(body, names)
        values = {n: decode(envelope[n], str, n) for n in names if n in envelope}
        args = _convert(values, _BindingArgs, "body")
    missing = [n for n in names if getattr(args, n) is UNSET or not getattr(args, n)]
    if missing:
        raise WireError(f"{', '.join(missing)}: required")
    _check_keys(body, None, _BINDING_KEYS)
    return BindingArgs(str(args.PodName), str(args.PodNamespace), str(args.PodUID), str(args.Node))
