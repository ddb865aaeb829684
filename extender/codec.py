"""The wire codec: kube-scheduler's JSON <-> views and decisions. The only module that knows JSON.

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
from datetime import datetime
from sys import intern
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from extender.engine.decisions import Victims
from extender.k8s.timefmt import parse_timestamp
from extender.view import (
    BoundPod,
    Condition,
    ContainerResources,
    NodeSystemInfo,
    NodeView,
    OwnerReference,
    PodView,
    Taint,
    Toleration,
)

Quantities = dict[str, str | int | float]


class WireError(ValueError):
    """The request body is not a valid extender request; the message names the problem."""


# -- Kubernetes objects: only the fields the views expose -----------------------------------


class _Meta(Struct, gc=False):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creationTimestamp: str | None = None
    ownerReferences: tuple[OwnerReference, ...] | None = None


class _NodeSpec(Struct, gc=False):
    unschedulable: bool | None = None
    taints: tuple[Taint, ...] | None = None
    providerID: str | None = None


class _NodeStatus(Struct, gc=False):
    capacity: Quantities | None = None
    allocatable: Quantities | None = None
    conditions: tuple[Condition, ...] | None = None
    nodeInfo: NodeSystemInfo | None = None


class _Node(Struct, gc=False):
    metadata: _Meta | None = None
    spec: _NodeSpec | None = None
    status: _NodeStatus | None = None


class _Resources(Struct, gc=False):
    requests: Quantities | None = None
    limits: Quantities | None = None


class _Container(Struct, gc=False):
    name: str = ""
    resources: _Resources | None = None
    restartPolicy: str | None = None


class _PodSpec(Struct, gc=False):
    containers: tuple[_Container, ...] | None = None
    initContainers: tuple[_Container, ...] | None = None
    overhead: Quantities | None = None
    resources: _Resources | None = None
    priority: int | None = None
    priorityClassName: str | None = None
    schedulerName: str | None = None
    nodeName: str | None = None
    nodeSelector: dict[str, str] | None = None
    tolerations: tuple[Toleration, ...] | None = None


class _Pod(Struct, gc=False):
    metadata: _Meta | None = None
    spec: _PodSpec | None = None


# -- extender envelopes, fast path (exact PascalCase keys) ----------------------------------


class _NodeList(Struct, gc=False):
    items: list[Raw] | None = None


# msgspec cannot put Raw in a union: an empty Raw stands for "key absent".
_ABSENT = Raw()


class _ExtenderArgs(Struct, gc=False):
    Pod: Raw = _ABSENT
    Nodes: _NodeList | list[Raw] | None | UnsetType = UNSET
    NodeNames: list[str] | None | UnsetType = UNSET


class _TypedNodeList(Struct, gc=False):
    items: list[_Node] | None = None


class _ScoringArgs(Struct, gc=False):
    """Prioritize needs no node bytes back: one typed pass is ~2.5 ms cheaper per 1000 nodes
    than capturing each node's bytes and decoding them one by one."""

    Pod: Raw = _ABSENT
    Nodes: _TypedNodeList | list[_Node] | None | UnsetType = UNSET
    NodeNames: list[str] | None | UnsetType = UNSET


class _VictimPodMeta(Struct, gc=False):
    uid: str = ""


class _VictimPod(Struct, gc=False):
    metadata: _VictimPodMeta | None = None


class _Victims(Struct, gc=False):
    Pods: list[_VictimPod] | None = None
    NumPDBViolations: int = 0


class _MetaPod(Struct, gc=False):
    UID: str = ""


class _MetaVictims(Struct, gc=False):
    Pods: list[_MetaPod] | None = None
    NumPDBViolations: int = 0


class _PreemptionArgs(Struct, gc=False):
    Pod: Raw = _ABSENT
    NodeNameToVictims: dict[str, _Victims | None] | None | UnsetType = UNSET
    NodeNameToMetaVictims: dict[str, _MetaVictims | None] | None | UnsetType = UNSET


class _BindingArgs(Struct, gc=False):
    PodName: str | UnsetType = UNSET
    PodNamespace: str | UnsetType = UNSET
    PodUID: str | UnsetType = UNSET
    Node: str | UnsetType = UNSET


# -- replies --------------------------------------------------------------------------------


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


class _MetaVictimsReply(Struct, gc=False):
    Pods: list[_MetaPod]
    NumPDBViolations: int


class _PreemptReply(Struct, gc=False):
    NodeNameToMetaVictims: dict[str, _MetaVictimsReply]


class _BindReply(Struct, gc=False):
    Error: str


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


T = TypeVar("T")

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


def _decode(data: bytes | Raw, kind: type[T], where: str) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise WireError(_locate(str(exc), where)) from None
    except msgspec.DecodeError as exc:
        raise WireError(f"{where}: {exc}" if where != "body" else f"request body is not valid JSON: {exc}") from None


def _locate(message: str, where: str) -> str:
    """``Expected `str`, got `int` - at `$.metadata.name``` -> ``Pod.metadata.name: expected `str`...``."""
    text, sep, path = message.rpartition(" - at `$")
    if not sep:
        return f"{'request body' if where == 'body' else where}: {message[:1].lower()}{message[1:]}"
    path = path.rstrip("`")
    prefix = "" if where == "body" else where
    location = f"{prefix}{path}".lstrip(".") or ("request body" if where == "body" else where)
    return f"{location}: {text[:1].lower()}{text[1:]}"


def _is_null(raw: Raw) -> bool:
    return len(raw) == 4 and bytes(raw) == b"null"


# -- views ----------------------------------------------------------------------------------


def _interned(values: dict[str, str] | None) -> dict[str, str]:
    return {intern(k): intern(v) for k, v in values.items()} if values else {}


def _interned_keys(values: dict[str, str] | None) -> dict[str, str]:
    # annotation values are often unique blobs: interning them would only cost time
    return {intern(k): v if len(v) > 64 else intern(v) for k, v in values.items()} if values else {}


def _compact_condition(c: Condition) -> Condition:
    return Condition(
        type=intern(c.type),
        status=intern(c.status),
        reason=intern(c.reason),
        message=intern(c.message),
        last_transition_time=intern(c.last_transition_time) if c.last_transition_time else None,
    )


def _compact_info(info: NodeSystemInfo | None) -> NodeSystemInfo:
    if info is None:
        return NodeSystemInfo()
    # machine/system/boot IDs are per node; the versions and platform repeat across a cluster
    return NodeSystemInfo(
        kernel_version=intern(info.kernel_version),
        os_image=intern(info.os_image),
        container_runtime_version=intern(info.container_runtime_version),
        kubelet_version=intern(info.kubelet_version),
        kube_proxy_version=intern(info.kube_proxy_version),
        operating_system=intern(info.operating_system),
        architecture=intern(info.architecture),
        machine_id=info.machine_id,
        system_uuid=info.system_uuid,
        boot_id=info.boot_id,
    )


def node_view(node: _Node, *, compact: bool = False) -> NodeView:
    """The view of a decoded Node. ``compact`` shares the strings that repeat across a
    cluster (label keys and values, condition texts, versions): a long-lived cache of
    thousands of nodes then holds each once; a one-off request skips the extra work."""
    meta = node.metadata or _Meta()
    spec = node.spec or _NodeSpec()
    status = node.status or _NodeStatus()
    if compact:
        labels, annotations = _interned(meta.labels), _interned_keys(meta.annotations)
        conditions = tuple(_compact_condition(c) for c in status.conditions or ())
        allocatable, capacity = _interned(status.allocatable), _interned(status.capacity)  # type: ignore[arg-type]
        info = _compact_info(status.nodeInfo)
    else:
        labels, annotations = meta.labels or {}, meta.annotations or {}
        conditions = status.conditions or ()
        allocatable, capacity = status.allocatable or {}, status.capacity or {}  # type: ignore[assignment]
        info = status.nodeInfo or NodeSystemInfo()
    return NodeView(
        meta.name,
        uid=meta.uid,
        labels=labels,
        annotations=annotations,
        creation_timestamp=meta.creationTimestamp,
        owner_references=meta.ownerReferences or (),
        unschedulable=bool(spec.unschedulable),
        taints=spec.taints or (),
        conditions=conditions,
        allocatable=allocatable,
        capacity=capacity,
        node_info=info,
        provider_id=spec.providerID or "",
    )


def decode_node(data: bytes | Raw, where: str = "node", *, compact: bool = False) -> NodeView:
    """Decode one Node object (from a request, a list or a watch event) into a view."""
    return node_view(_decode(data, _Node, where), compact=compact)


def decode_nodes(items: Sequence[Raw]) -> list[NodeView]:
    """Views of the node items of a full-node request; a node without a name is an error."""
    views = []
    for index, item in enumerate(items):
        view = decode_node(item, f"Nodes.items[{index}]")
        if not view.name:
            raise WireError(f"Nodes.items[{index}].metadata.name: required")
        views.append(view)
    return views


def _container(container: _Container) -> ContainerResources:
    resources = container.resources or _Resources()
    return ContainerResources(
        name=container.name,
        requests=resources.requests or {},
        limits=resources.limits or {},
        restart_policy=container.restartPolicy,
    )


def decode_pod(data: bytes | Raw, where: str = "Pod") -> PodView:
    """Decode a Pod object into a view."""
    pod = _decode(data, _Pod, where)
    if pod.metadata is None:
        raise WireError(f"{where}.metadata: required")
    return _pod_view(pod)


def _pod_view(pod: _Pod) -> PodView:
    meta = pod.metadata or _Meta()
    spec = pod.spec or _PodSpec()
    pod_resources = spec.resources
    return PodView(
        meta.name,
        meta.namespace or "default",
        uid=meta.uid,
        labels=meta.labels or {},
        annotations=meta.annotations or {},
        creation_timestamp=meta.creationTimestamp,
        owner_references=meta.ownerReferences or (),
        priority=spec.priority,
        priority_class_name=spec.priorityClassName or "",
        scheduler_name=spec.schedulerName or "",
        node_name=spec.nodeName or "",
        node_selector=spec.nodeSelector or {},
        tolerations=spec.tolerations or (),
        containers=tuple(_container(c) for c in spec.containers or ()),
        init_containers=tuple(_container(c) for c in spec.initContainers or ()),
        overhead=spec.overhead or {},
        pod_resources=_container(_Container(resources=pod_resources)) if pod_resources else None,
    )


# -- requests -------------------------------------------------------------------------------


def _lenient_envelope(body: bytes, canonical: Iterable[str]) -> dict[str, Raw]:
    """Top-level keys matched case-insensitively to ``canonical`` (Go's decoder does the same)."""
    fields = _decode(body, dict[str, Raw], "body")
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
    if _is_null(raw):
        raise WireError("Pod: must be a Pod object, got null")
    return decode_pod(raw)


def decode_extender_args(body: bytes) -> ExtenderArgs:
    """Decode a filter or prioritize request body."""
    args = _decode(body, _ExtenderArgs, "body")
    if len(args.Pod) == 0 or (args.Nodes is UNSET and args.NodeNames is UNSET):
        envelope = _lenient_envelope(body, ("Pod", "Nodes", "NodeNames"))
        args = _ExtenderArgs(
            Pod=envelope.get("Pod", _ABSENT),
            Nodes=_decode(envelope["Nodes"], _NodeList | list[Raw] | None, "Nodes") if "Nodes" in envelope else UNSET,  # type: ignore[arg-type]
            NodeNames=_decode(envelope["NodeNames"], list[str] | None, "NodeNames") if "NodeNames" in envelope else UNSET,  # type: ignore[arg-type]
        )
    pod = _require_pod(args.Pod)
    nodes = args.Nodes if not isinstance(args.Nodes, UnsetType) else None
    names = args.NodeNames if not isinstance(args.NodeNames, UnsetType) else None
    if nodes is not None:
        items = nodes.items if isinstance(nodes, _NodeList) else nodes
        return ExtenderArgs(pod=pod, node_items=items or [], node_names=None)
    if names is not None:
        return ExtenderArgs(pod=pod, node_items=None, node_names=names)
    raise WireError("Nodes or NodeNames: one of them must be set (both are missing or null)")


def decode_scoring_args(body: bytes) -> ScoringArgs:
    """Decode a prioritize request, nodes straight into views (no bytes kept)."""
    args = _decode(body, _ScoringArgs, "body")
    if len(args.Pod) == 0 or (args.Nodes is UNSET and args.NodeNames is UNSET):
        lenient = decode_extender_args(body)
        items = lenient.node_items
        return ScoringArgs(lenient.pod, decode_nodes(items) if items is not None else None, lenient.node_names)
    pod = _require_pod(args.Pod)
    views = _typed_views(args)
    if views is not None:
        return ScoringArgs(pod, views, None)
    if args.NodeNames is not None and not isinstance(args.NodeNames, UnsetType):
        return ScoringArgs(pod, None, args.NodeNames)
    raise WireError("Nodes or NodeNames: one of them must be set (both are missing or null)")


def _typed_views(args: _ScoringArgs) -> list[NodeView] | None:
    if args.Nodes is None or isinstance(args.Nodes, UnsetType):
        return None
    nodes = (args.Nodes.items if isinstance(args.Nodes, _TypedNodeList) else args.Nodes) or []
    views = [node_view(node) for node in nodes]
    for index, view in enumerate(views):
        if not view.name:
            raise WireError(f"Nodes.items[{index}].metadata.name: required")
    return views


def decode_node_views(body: bytes, args: ExtenderArgs) -> list[NodeView]:
    """Views of a full-node filter request's nodes, in the order of ``args.node_items``.

    A second, typed pass over the body is cheaper than decoding each captured item on its
    own (measured: 7.1 vs 8.7 us per node); requests whose envelope keys are spelled
    otherwise (the lenient path) decode the captured items instead.
    """
    items = args.node_items or []
    typed = _decode(body, _ScoringArgs, "body")
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


def _lenient_preemption(body: bytes) -> _PreemptionArgs:
    """Case-insensitive preempt envelope, down to the Victims and MetaPod keys."""
    envelope = _lenient_envelope(body, ("Pod", "NodeNameToVictims", "NodeNameToMetaVictims"))

    def victims_map(key: str, victims_keys: tuple[str, ...], pod_keys: tuple[str, ...]) -> Any:
        raw = envelope.get(key)
        if raw is None:
            return UNSET
        nodes: dict[str, dict[str, Any]] | None = _decode(raw, dict[str, dict[str, Any]] | None, key)  # type: ignore[arg-type]
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

    def convert(value: Any, kind: Any, key: str) -> Any:
        if value is UNSET:
            return UNSET
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise WireError(_locate(str(exc), key)) from None

    return _PreemptionArgs(
        Pod=envelope.get("Pod", _ABSENT),
        NodeNameToVictims=convert(
            victims_map("NodeNameToVictims", ("Pods", "NumPDBViolations"), ()),
            dict[str, _Victims | None] | None,
            "NodeNameToVictims",
        ),
        NodeNameToMetaVictims=convert(
            victims_map("NodeNameToMetaVictims", ("Pods", "NumPDBViolations"), ("UID",)),
            dict[str, _MetaVictims | None] | None,
            "NodeNameToMetaVictims",
        ),
    )


def decode_preemption_args(body: bytes) -> PreemptionArgs:
    """Decode a preempt request; full victim pods and meta victims both become UIDs."""
    args = _decode(body, _PreemptionArgs, "body")
    if len(args.Pod) == 0 or (args.NodeNameToVictims is UNSET and args.NodeNameToMetaVictims is UNSET):
        args = _lenient_preemption(body)
    pod = _require_pod(args.Pod)
    meta = args.NodeNameToMetaVictims
    full = args.NodeNameToVictims
    if isinstance(meta, dict):
        return PreemptionArgs(pod, {n: _victims_from_meta(v) for n, v in meta.items()}, meta=True)
    if isinstance(full, dict):
        return PreemptionArgs(pod, {n: _victims_from_pods(v) for n, v in full.items()}, meta=False)
    raise WireError("NodeNameToVictims or NodeNameToMetaVictims: one of them must be set (both are missing or null)")


def decode_binding_args(body: bytes) -> BindingArgs:
    """Decode a bind request; every field is required."""
    args = _decode(body, _BindingArgs, "body")
    names = ("PodName", "PodNamespace", "PodUID", "Node")
    if any(getattr(args, n) is UNSET for n in names):
        envelope = _lenient_envelope(body, names)
        values = {n: _decode(envelope[n], str, n) for n in names if n in envelope}
        args = _BindingArgs(**values)
    missing = [n for n in names if getattr(args, n) is UNSET or not getattr(args, n)]
    if missing:
        raise WireError(f"{', '.join(missing)}: required")
    return BindingArgs(str(args.PodName), str(args.PodNamespace), str(args.PodUID), str(args.Node))


# -- replies --------------------------------------------------------------------------------


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
    return _encoder.encode(reply)


def encode_host_priorities(scores: Iterable[tuple[str, int]]) -> bytes:
    """``HostPriorityList``: a bare JSON array of ``{"Host", "Score"}`` with integer scores."""
    return _encoder.encode([_HostPriority(host, int(score)) for host, score in scores])


def encode_preempt_reply(kept: Mapping[str, Victims]) -> bytes:
    """``ExtenderPreemptionResult``: always ``NodeNameToMetaVictims`` (victim UIDs)."""
    return _encoder.encode(
        _PreemptReply(
            {
                node: _MetaVictimsReply([_MetaPod(uid) for uid in victims.uids], victims.num_pdb_violations)
                for node, victims in kept.items()
            }
        )
    )


def encode_bind_reply(error: str = "") -> bytes:
    """``ExtenderBindingResult``."""
    return _encoder.encode(_BindReply(error))


def encode_json(value: Any) -> bytes:
    """Plain JSON for the non-protocol endpoints (errors, probes, version)."""
    return _encoder.encode(value)


# -- Kubernetes API objects (lists, watch events, Status, pods) -------------------------------


class _ListMeta(Struct, gc=False):
    resourceVersion: str = ""
    #: pagination token ("continue" is a Python keyword)
    continue_: str = msgspec.field(default="", name="continue")
    remainingItemCount: int | None = None


class _List(Struct, gc=False):
    metadata: _ListMeta | None = None
    items: list[Raw] | None = None


class _ObjectMeta(Struct, gc=False):
    resourceVersion: str = ""


class _Object(Struct, gc=False):
    metadata: _ObjectMeta | None = None


class _WatchEvent(Struct, gc=False):
    type: str
    object: Raw


class _Status(Struct, gc=False):
    kind: str = ""
    status: str = ""
    message: str = ""
    reason: str = ""
    code: int = 0


class _PodCondition(Struct, gc=False):
    type: str = ""
    status: str = ""
    lastTransitionTime: str | None = None


class _PodStatus(Struct, gc=False):
    phase: str = ""
    conditions: list[_PodCondition] | None = None


class _PodWithStatus(Struct, gc=False):
    metadata: _Meta | None = None
    spec: _PodSpec | None = None
    status: _PodStatus | None = None


@dataclass(frozen=True)
class ListPage:
    """One page of a Kubernetes list: raw items, the list's resourceVersion, the continue token."""

    items: Sequence[Raw]
    resource_version: str
    continue_token: str
    remaining: int | None


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch stream. ``object`` stays raw until the cache decodes what it keeps."""

    type: str
    object: Raw
    resource_version: str


@dataclass(frozen=True)
class ApiStatus:
    """A ``metav1.Status`` (error bodies, watch ERROR events)."""

    code: int
    reason: str
    message: str


def decode_list(body: bytes) -> ListPage:
    """A ``*List`` response page."""
    page = _decode(body, _List, "list")
    meta = page.metadata or _ListMeta()
    return ListPage(page.items or [], meta.resourceVersion, meta.continue_, meta.remainingItemCount)


def decode_watch_event(line: bytes) -> WatchEvent:
    """One JSON line of a watch stream (ADDED, MODIFIED, DELETED, BOOKMARK or ERROR)."""
    event = _decode(line, _WatchEvent, "watch event")
    meta = _decode(event.object, _Object, "watch event object").metadata
    return WatchEvent(event.type, event.object, meta.resourceVersion if meta else "")


def decode_status(body: bytes | Raw) -> ApiStatus | None:
    """The Status in an error body or ERROR event, or None if it is not one (e.g. plain text)."""
    try:
        status = msgspec.json.decode(body, type=_Status)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if status.kind != "Status":
        return None
    return ApiStatus(status.code, status.reason, status.message)


def decode_pod_placement(body: bytes | Raw) -> tuple[str, str]:
    """``(metadata.uid, spec.nodeName)`` of a Pod: what a binder checks after a conflict."""
    pod = _decode(body, _PodWithStatus, "pod")
    meta = pod.metadata or _Meta()
    spec = pod.spec or _PodSpec()
    return meta.uid, spec.nodeName or ""


def decode_bound_pod(data: bytes | Raw) -> BoundPod | None:
    """The pod cache's slim record of a pod, or None if it is not bound to a node."""
    raw = _decode(data, _PodWithStatus, "pod")
    spec = raw.spec or _PodSpec()
    if not spec.nodeName:
        return None
    view = _pod_view(_Pod(metadata=raw.metadata or _Meta(), spec=spec))
    scheduled = None
    for condition in (raw.status.conditions if raw.status else None) or ():
        if condition.type == "PodScheduled" and condition.status == "True" and condition.lastTransitionTime:
            scheduled = condition.lastTransitionTime
    return BoundPod(
        uid=view.uid,
        namespace=view.namespace,
        name=view.name,
        node_name=spec.nodeName,
        requests=view.requests,
        creation_timestamp=view.creation_timestamp,
        scheduled_at=_timestamp(scheduled),
    )


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def encode_binding(namespace: str, name: str, uid: str, node: str) -> bytes:
    """A ``v1.Binding``; ``metadata.uid`` makes the API server check it is still the same pod."""
    return _encoder.encode(
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
    )
