"""The API server's wire format: list pages, watch events, Status errors, Bindings, pods.

What the node and pod caches (:mod:`extender.kube.reflector`) and the binder read and send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from msgspec import Raw, Struct

from extender.codec.common import decode, encode_json
from extender.codec.objects import Meta, Pod, PodSpec, pod_view
from extender.k8s.timefmt import parse_timestamp
from extender.view import BoundPod

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
    metadata: Meta | None = None
    spec: PodSpec | None = None
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
    page = decode(body, _List, "list")
    meta = page.metadata or _ListMeta()
    return ListPage(page.items or [], meta.resourceVersion, meta.continue_, meta.remainingItemCount)


def decode_watch_event(line: bytes) -> WatchEvent:
    """One JSON line of a watch stream (ADDED, MODIFIED, DELETED, BOOKMARK or ERROR)."""
    event = decode(line, _WatchEvent, "watch event")
    meta = decode(event.object, _Object, "watch event object").metadata
    return WatchEvent(event.type, event.object, meta.resourceVersion if meta else "")


def decode_status(body: bytes | Raw) -> ApiStatus | None:
    """The Status in an error body or ERROR event, or None if it is not one (e.g. plain text)."""
    try:
        status = msgspec.json.decode(body, type=_Status)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # nested too deeply to be one
        return None
    if status.kind != "Status":
        return None
    return ApiStatus(status.code, status.reason, status.message)


def decode_pod_placement(body: bytes | Raw) -> tuple[str, str]:
    """``(metadata.uid, spec.nodeName)`` of a Pod: what a binder checks after a conflict."""
    pod = decode(body, _PodWithStatus, "pod")
    meta = pod.metadata or Meta()
    spec = pod.spec or PodSpec()
    return meta.uid, spec.nodeName or ""


def decode_bound_pod(data: bytes | Raw) -> BoundPod | None:
    """The pod cache's slim record of a pod, or None if it is not bound to a node."""
    raw = decode(data, _PodWithStatus, "pod")
    spec = raw.spec or PodSpec()
    if not spec.nodeName:
        return None
    view = pod_view(Pod(metadata=raw.metadata or Meta(), spec=spec))
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


class _PlacementMeta(Struct, gc=False):
    uid: str = ""
    creationTimestamp: str | None = None


class _PlacementSpec(Struct, gc=False):
    nodeName: str | None = None


class _PodPlacement(Struct, gc=False):
    metadata: _PlacementMeta | None = None
    spec: _PlacementSpec | None = None
    status: _PodStatus | None = None


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """Where and when a pod was bound, read without decoding the rest of it."""

    uid: str
    node_name: str
    #: the PodScheduled condition's lastTransitionTime, else the creation time (None: neither)
    bound_at: datetime | None


def decode_pod_bind_time(data: bytes | Raw) -> PodPlacement:
    """UID, node and bind time of a pod: what the pod cache reads of every pod it lists.

    Skips labels, containers and the rest (a 150k-pod list is mostly pods bound long ago,
    which in-flight accounting ignores); :func:`decode_bound_pod` reads the requests of the
    few bound recently.
    """
    pod = decode(data, _PodPlacement, "pod")
    meta = pod.metadata or _PlacementMeta()
    scheduled = None
    for condition in (pod.status.conditions if pod.status else None) or ():
        if condition.type == "PodScheduled" and condition.status == "True" and condition.lastTransitionTime:
            scheduled = condition.lastTransitionTime
    return PodPlacement(meta.uid, (pod.spec.nodeName if pod.spec else None) or "", _timestamp(scheduled or meta.creationTimestamp))


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def encode_binding(namespace: str, name: str, uid: str, node: str) -> bytes:
    """A ``v1.Binding``; ``metadata.uid`` makes the API server check it is still the same pod."""
    return encode_json(
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
    )
