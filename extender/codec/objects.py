"""Kubernetes Pod and Node objects as the codec reads them: only the fields views expose.

Both wire formats embed these objects (kube-scheduler's requests carry them; the API
server's lists and watch events are made of them), and both turn them into the read-only
views rules see (:mod:`extender.view`).
"""

from __future__ import annotations

from collections.abc import Sequence
from sys import intern
from typing import Annotated, Any

import msgspec
from msgspec import Meta as Bounds
from msgspec import Raw, Struct

from extender.codec.common import WireError, decode
from extender.view import (
    Condition,
    ContainerResources,
    NodeAddress,
    NodeSystemInfo,
    NodeView,
    OwnerReference,
    PodView,
    Taint,
    Toleration,
)

Quantities = dict[str, str | int | float]

# Kubernetes' own bounds, checked while decoding (msgspec does it at no measurable cost), so
# a value Kubernetes could never hold is a 400 naming the field rather than a surprise later.
#: node and pod names are DNS subdomains
Name = Annotated[str, Bounds(max_length=253)]
#: namespaces are DNS labels
Namespace = Annotated[str, Bounds(max_length=63)]
#: Go's int32 (``spec.priority``) and int64 (``NumPDBViolations``)
Int32 = Annotated[int, Bounds(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Bounds(ge=-(2**63), le=2**63 - 1)]


# -- Kubernetes objects: only the fields the views expose -----------------------------------


class Meta(Struct, gc=False):
    name: Name = ""
    namespace: Namespace = ""
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creationTimestamp: str | None = None
    ownerReferences: tuple[OwnerReference, ...] | None = None
    resourceVersion: str = ""


class NodeSpec(Struct, gc=False):
    unschedulable: bool | None = None
    taints: tuple[Taint, ...] | None = None
    providerID: str | None = None


class NodeStatus(Struct, gc=False):
    capacity: Quantities | None = None
    allocatable: Quantities | None = None
    conditions: tuple[Condition, ...] | None = None
    nodeInfo: NodeSystemInfo | None = None
    addresses: tuple[NodeAddress, ...] | None = None


class Node(Struct, gc=False):
    metadata: Meta | None = None
    spec: NodeSpec | None = None
    status: NodeStatus | None = None


class Resources(Struct, gc=False):
    requests: Quantities | None = None
    limits: Quantities | None = None


class Container(Struct, gc=False):
    name: str = ""
    resources: Resources | None = None
    restartPolicy: str | None = None


class PodSpec(Struct, gc=False):
    containers: tuple[Container, ...] | None = None
    initContainers: tuple[Container, ...] | None = None
    overhead: Quantities | None = None
    resources: Resources | None = None
    priority: Int32 | None = None
    priorityClassName: str | None = None
    schedulerName: str | None = None
    nodeName: str | None = None
    nodeSelector: dict[str, str] | None = None
    tolerations: tuple[Toleration, ...] | None = None


class Pod(Struct, gc=False):
    metadata: Meta | None = None
    spec: PodSpec | None = None



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


def node_view(node: Node, *, compact: bool = False) -> NodeView:
    """The view of a decoded Node. ``compact`` shares the strings that repeat across a
    cluster (label keys and values, condition texts, versions): a long-lived cache of
    thousands of nodes then holds each once; a one-off request skips the extra work."""
    meta = node.metadata or Meta()
    spec = node.spec or NodeSpec()
    status = node.status or NodeStatus()
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
        resource_version=meta.resourceVersion,
        addresses=status.addresses or (),
    )


def decode_node(data: bytes | Raw, where: str = "node", *, compact: bool = False) -> NodeView:
    """Decode one Node object (from a request, a list or a watch event) into a view."""
    return node_view(decode(data, Node, where), compact=compact)


def decode_nodes(items: Sequence[Raw]) -> list[NodeView]:
    """Views of the node items of a full-node request; a node without a name is an error."""
    views = []
    for index, item in enumerate(items):
        view = decode_node(item, f"Nodes.items[{index}]")
        if not view.name:
            raise WireError(f"Nodes.items[{index}].metadata.name: required")
        views.append(view)
    return views


def _container(container: Container) -> ContainerResources:
    resources = container.resources or Resources()
    return ContainerResources(
        name=container.name,
        requests=resources.requests or {},
        limits=resources.limits or {},
        restart_policy=container.restartPolicy,
    )


def decode_pod(data: bytes | Raw, where: str = "Pod") -> PodView:
    """Decode a Pod object into a view."""
    pod = decode(data, Pod, where)
    if pod.metadata is None:
        raise WireError(f"{where}.metadata: required")
    return pod_view(pod)


def pod_view(pod: Pod) -> PodView:
    meta = pod.metadata or Meta()
    spec = pod.spec or PodSpec()
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
        pod_resources=_container(Container(resources=pod_resources)) if pod_resources else None,
    )


def object_schemas(ref_template: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """JSON Schemas of a Pod and a Node as the codec reads them, derived by msgspec from the
    very types that decode them (fields, types, nullability, bounds), so a published API
    description cannot drift from the decoder: ``(pod, node, components)``, the first two
    being ``$ref``s into ``components`` written with ``ref_template`` (``...{name}``).

    Fields the codec does not read are not listed and are allowed (Kubernetes objects carry
    many more). A Pod without ``metadata`` and a Node without a name are rejected by the
    decoding functions above, so the schemas require them too.
    """
    (pod, node), components = msgspec.json.schema_components((Pod, Node), ref_template=ref_template)
    meta_ref = {"$ref": ref_template.format(name="Meta")}
    components["Pod"]["properties"]["metadata"] = meta_ref
    components["Pod"]["required"] = ["metadata"]
    named_meta = {"allOf": [meta_ref, {"required": ["name"], "properties": {"name": {"minLength": 1}}}]}
    components["Node"]["properties"]["metadata"] = named_meta
    components["Node"]["required"] = ["metadata"]
    return pod, node, components
