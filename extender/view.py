"""Read-only views of the Pod and Nodes that rules read.

Rules never see wire dicts: the codec builds these views, so the codec can change (or a
node cache can build them from watch events) without touching a rule. Derived values
(parsed quantities, timestamps, effective pod requests) are computed on first access.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any

import msgspec

from extender.k8s.quantity import parse_quantity
from extender.k8s.timefmt import parse_timestamp

_EMPTY: Mapping[str, Any] = MappingProxyType({})

ResourceList = Mapping[str, Decimal]


class Taint(msgspec.Struct, frozen=True, gc=False):
    """A node taint (``spec.taints[]``)."""

    key: str = ""
    value: str = ""
    effect: str = ""


class Toleration(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    """A pod toleration (``spec.tolerations[]``)."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    #: an int64 in Kubernetes; bounded here so a decoded request cannot hold a larger one
    toleration_seconds: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None = None


class Condition(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    """A node condition (``status.conditions[]``): ``type`` is e.g. ``Ready``, status ``True``/``False``/``Unknown``."""

    type: str
    status: str = "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class OwnerReference(msgspec.Struct, frozen=True, gc=False):
    """``metadata.ownerReferences[]``; ``controller`` marks the managing owner."""

    kind: str = ""
    name: str = ""
    uid: str = ""
    apiVersion: str = ""
    controller: bool = False


class NodeAddress(msgspec.Struct, frozen=True, gc=False):
    """A node address (``status.addresses[]``): ``type`` is InternalIP, ExternalIP, Hostname, ..."""

    type: str = ""
    address: str = ""


class NodeSystemInfo(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    """``status.nodeInfo``: kubelet-reported versions and platform."""

    kernel_version: str = ""
    os_image: str = ""
    container_runtime_version: str = ""
    kubelet_version: str = ""
    kube_proxy_version: str = ""
    operating_system: str = ""
    architecture: str = ""
    machine_id: str = msgspec.field(default="", name="machineID")
    system_uuid: str = msgspec.field(default="", name="systemUUID")
    boot_id: str = msgspec.field(default="", name="bootID")


class ContainerResources(msgspec.Struct, frozen=True, gc=False):
    """The resource view of one container: raw requests/limits and its restart policy."""

    name: str = ""
    requests: Mapping[str, str | int | float] = _EMPTY
    limits: Mapping[str, str | int | float] = _EMPTY
    restart_policy: str | None = None


_EMPTY_INFO = NodeSystemInfo()


def _parse_resources(raw: Mapping[str, str | int | float]) -> ResourceList:
    return _parse_resource_items(tuple(raw.items()))


@lru_cache(maxsize=1024)
def _parse_resource_items(items: tuple[tuple[str, str | int | float], ...]) -> ResourceList:
    # Shared, immutable result: nodes of one instance type report identical resources.
    return MappingProxyType({name: parse_quantity(value) for name, value in items})


def _add(into: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, Decimal(0)) + value


def _max(into: dict[str, Decimal], other: Mapping[str, Decimal]) -> None:
    for name, value in other.items():
        if value > into.get(name, Decimal(0)):
            into[name] = value


class BoundPod(msgspec.Struct, frozen=True, gc=False):
    """A pod already placed on a node, as the pod cache keeps it (only what load accounting needs)."""

    uid: str
    namespace: str
    name: str
    node_name: str
    requests: ResourceList
    creation_timestamp: datetime | None = None
    #: when the PodScheduled condition turned True (the bind), if reported
    scheduled_at: datetime | None = None


class NodeView:
    """What a rule may read about one Node. Immutable (a changed node is a new view)."""

    __slots__ = (
        "name",
        "uid",
        "resource_version",
        "labels",
        "annotations",
        "unschedulable",
        "taints",
        "conditions",
        "node_info",
        "provider_id",
        "addresses",
        "owner_references",
        "_creation_timestamp",
        "_allocatable",
        "_capacity",
        "_raw_allocatable",
        "_raw_capacity",
        "_conditions_by_type",
        "memo",
    )

    def __init__(
        self,
        name: str,
        *,
        uid: str = "",
        labels: Mapping[str, str] = _EMPTY,
        annotations: Mapping[str, str] = _EMPTY,
        creation_timestamp: str | None = None,
        owner_references: tuple[OwnerReference, ...] = (),
        unschedulable: bool = False,
        taints: tuple[Taint, ...] = (),
        conditions: tuple[Condition, ...] = (),
        allocatable: Mapping[str, str | int | float] = _EMPTY,
        capacity: Mapping[str, str | int | float] = _EMPTY,
        node_info: NodeSystemInfo = _EMPTY_INFO,
        provider_id: str = "",
        resource_version: str = "",
        addresses: tuple[NodeAddress, ...] = (),
    ) -> None:
        self.name = name
        self.uid = uid
        #: ``metadata.resourceVersion``: opaque to clients, but etcd's are increasing integers
        self.resource_version = resource_version
        self.labels: Mapping[str, str] = labels
        self.annotations: Mapping[str, str] = annotations
        self.owner_references = owner_references
        self.unschedulable = unschedulable
        self.taints = taints
        self.conditions = conditions
        self.node_info = node_info
        self.provider_id = provider_id
        #: ``status.addresses``: what metric sources map an ``instance`` address through
        self.addresses = addresses
        self._creation_timestamp: str | datetime | None = creation_timestamp
        self._raw_allocatable = allocatable
        self._raw_capacity = capacity
        self._allocatable: ResourceList | None = None
        self._capacity: ResourceList | None = None
        self._conditions_by_type: dict[str, Condition] | None = None
        #: the engine's per-node verdict cache: it lives and dies with this view, so a
        #: changed node (a new view from the cache) starts with an empty one
        self.memo: dict[Hashable, tuple[float, Any]] = {}

    @property
    def creation_timestamp(self) -> datetime | None:
        """``metadata.creationTimestamp`` as an aware datetime (None if absent or malformed)."""
        value = self._creation_timestamp
        if isinstance(value, str):
            try:
                value = parse_timestamp(value)
            except ValueError:
                value = None
            self._creation_timestamp = value
        return value

    @property
    def allocatable(self) -> ResourceList:
        """``status.allocatable`` in base units (cores, bytes, counts) as Decimals."""
        if self._allocatable is None:
            self._allocatable = _parse_resources(self._raw_allocatable)
        return self._allocatable

    @property
    def capacity(self) -> ResourceList:
        """``status.capacity`` in base units as Decimals."""
        if self._capacity is None:
            self._capacity = _parse_resources(self._raw_capacity)
        return self._capacity

    def condition(self, condition_type: str) -> Condition | None:
        """The node's condition of this type, or None if the node does not report it."""
        by_type = self._conditions_by_type
        if by_type is None:
            by_type = self._conditions_by_type = {c.type: c for c in self.conditions}
        return by_type.get(condition_type)

    def __repr__(self) -> str:
        return f"NodeView({self.name!r})"


class PodView:
    """What a rule may read about the Pod being scheduled."""

    __slots__ = (
        "name",
        "namespace",
        "uid",
        "labels",
        "annotations",
        "owner_references",
        "priority",
        "priority_class_name",
        "scheduler_name",
        "node_name",
        "node_selector",
        "tolerations",
        "containers",
        "init_containers",
        "_overhead",
        "_pod_resources",
        "_creation_timestamp",
        "_requests",
    )

    def __init__(
        self,
        name: str,
        namespace: str = "default",
        *,
        uid: str = "",
        labels: Mapping[str, str] = _EMPTY,
        annotations: Mapping[str, str] = _EMPTY,
        creation_timestamp: str | None = None,
        owner_references: tuple[OwnerReference, ...] = (),
        priority: int | None = None,
        priority_class_name: str = "",
        scheduler_name: str = "",
        node_name: str = "",
        node_selector: Mapping[str, str] = _EMPTY,
        tolerations: tuple[Toleration, ...] = (),
        containers: tuple[ContainerResources, ...] = (),
        init_containers: tuple[ContainerResources, ...] = (),
        overhead: Mapping[str, str | int | float] = _EMPTY,
        pod_resources: ContainerResources | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.labels: Mapping[str, str] = labels
        self.annotations: Mapping[str, str] = annotations
        self.owner_references = owner_references
        self.priority = priority
        self.priority_class_name = priority_class_name
        self.scheduler_name = scheduler_name
        self.node_name = node_name
        self.node_selector: Mapping[str, str] = node_selector
        self.tolerations = tolerations
        self.containers = containers
        self.init_containers = init_containers
        self._overhead = overhead
        self._pod_resources = pod_resources
        self._creation_timestamp: str | datetime | None = creation_timestamp
        self._requests: ResourceList | None = None

    @property
    def creation_timestamp(self) -> datetime | None:
        """``metadata.creationTimestamp`` as an aware datetime (None if absent or malformed)."""
        value = self._creation_timestamp
        if isinstance(value, str):
            try:
                value = parse_timestamp(value)
            except ValueError:
                value = None
            self._creation_timestamp = value
        return value

    @property
    def owner(self) -> OwnerReference | None:
        """The controlling owner (e.g. the ReplicaSet, DaemonSet or Job), if any."""
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None

    @property
    def requests(self) -> ResourceList:
        """Effective pod requests as kube-scheduler computes them (``resourcehelper.PodRequests``).

        max(sum of app containers + restartable init (sidecar) containers, the largest
        init-phase need) + overhead; pod-level ``spec.resources.requests`` take precedence.
        """
        if self._requests is None:
            self._requests = MappingProxyType(self._effective_requests())
        return self._requests

    def _effective_requests(self) -> dict[str, Decimal]:
        total: dict[str, Decimal] = {}
        for container in self.containers:
            _add(total, _parse_resources(container.requests))
        init_need: dict[str, Decimal] = {}
        sidecars: dict[str, Decimal] = {}
        for container in self.init_containers:
            need = _parse_resources(container.requests)
            if container.restart_policy == "Always":
                _add(total, need)
                _add(sidecars, need)
                phase = dict(sidecars)
            else:
                phase = dict(sidecars)
                _add(phase, need)
            _max(init_need, phase)
        _max(total, init_need)
        if self._pod_resources is not None and self._pod_resources.requests:
            for name, value in _parse_resources(self._pod_resources.requests).items():
                total[name] = value
        _add(total, _parse_resources(self._overhead))
        return total

    @property
    def overhead(self) -> ResourceList:
        """``spec.overhead``, parsed (the RuntimeClass's per-pod cost, part of :attr:`requests`)."""
        return _parse_resources(self._overhead)

    @property
    def resource_names(self) -> frozenset[str]:
        """Every resource named in any container's requests or limits (as managedResources checks)."""
        names: set[str] = set()
        for container in (*self.containers, *self.init_containers):
            names.update(container.requests)
            names.update(container.limits)
        return frozenset(names)

    def __repr__(self) -> str:
        return f"PodView({self.namespace!r}, {self.name!r})"
