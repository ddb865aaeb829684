"""The storage half of the fake kube-apiserver: revisions, history, lists, watches, binding.

Nothing here knows about HTTP (that is :mod:`tests.kube.fake_apiserver`). It models a
kube-apiserver v1.24 in front of etcd, with the watch cache on, for nodes and pods:

* One revision counter shared by every object, like etcd's: each write bumps it, stamps it
  into ``metadata.resourceVersion`` and appends an :class:`Event` to the log. A write that
  changes nothing is not written (no new revision, no event), as ``GuaranteedUpdate`` does.
* Objects live under their etcd keys (``/registry/minions/<name>``,
  ``/registry/pods/<namespace>/<name>``); lists and continue tokens follow key order.
* Lists follow ``Cacher.GetList``: ``resourceVersion=0`` (without continue) is served from
  the watch cache and ignores ``limit``; ``resourceVersion=N`` without limit waits until
  the cache has N (3 s, then 504 "Too large resource version"); everything else is read
  from "etcd" (``etcd3.store.GetList``) at the latest revision, at the continue token's
  revision, or exactly at N (limit + N, or ``resourceVersionMatch=Exact``), with pages,
  continue tokens and ``remainingItemCount`` (only when no selector is given).
* Watches follow ``Cacher.Watch``/``cacheWatcher``: ``resourceVersion`` 0 or empty starts
  with synthetic ADDED events for the current state; N replays the log after N; with a
  selector, an object that stops matching arrives as DELETED (its previous state stamped
  with the new revision) and one that starts matching as ADDED.
* A compaction point: history older than it is gone. Lists at such a revision get 410
  Expired, watches a 200 and a single ERROR event. It starts at ``initial_rv`` (the watch
  cache of a fresh server starts at the revision it listed), so only newer history exists.

Stored objects are never mutated: every write stores a new dict, so the log, lists and the
per-object JSON cache can share them. Objects are kept as list items, without kind and
apiVersion; single objects and watch events get them prepended on the wire.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import posixpath
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, Literal

JsonObj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
WatchState = Literal["open", "ended", "dropped"]

# -- the recordings ------------------------------------------------------------------------


#: the recordings copied into the repository (tests/fixtures, see COPIED-FROM.md there)
FIXTURES: Final = Path(__file__).resolve().parents[1] / "fixtures"
#: responses recorded from a real kube-apiserver v1.24 (see the fixtures' README)
RECORDINGS: Final = FIXTURES / "kube-apiserver-v1.24"


def recording(name: str) -> Any:
    """One recorded response body, parsed (``nodes-list-page1.json``, ``bind-ok.json`` ...)."""
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))


def recorded_nodes() -> list[JsonObj]:
    """The recorded cluster's 8 nodes: the 6 of the two recorded list pages, plus node-00006
    and node-00007 from kube-scheduler's filter request (the list recording stops at page 2)."""
    nodes: list[JsonObj] = recording("nodes-list-page1.json")["items"] + recording("nodes-list-page2.json")["items"]
    request = json.loads(
        (FIXTURES / "kube-scheduler-v1.24/full-nodes/00001-filter-web-1.request.json").read_text(encoding="utf-8")
    )
    nodes += [n for n in request["Nodes"]["items"] if n["metadata"]["name"] in ("node-00006", "node-00007")]
    return nodes


def recorded_pods() -> list[JsonObj]:
    """The 3 pods of the recorded pod list (``default/bindme``, ``gpu-1``, ``plain-1``)."""
    pods: list[JsonObj] = recording("pods-list-page1.json")["items"]
    return pods


# -- the wire format -----------------------------------------------------------------------

_GO_ESCAPE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> bytes:
    """Compact JSON as the apiserver writes it (Go escapes ``<``, ``>``, ``&``, U+2028/9)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _GO_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def now_rfc3339() -> str:
    """A ``metav1.Time`` for now (second precision, UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(
    code: int,
    reason: str,
    message: str,
    *,
    details: JsonObj | None = None,
    continue_token: str = "",
    success: bool = False,
) -> JsonObj:
    """A ``meta/v1 Status`` in Go's field order, with its omitempty rules."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {"continue": continue_token} if continue_token else {},
        "status": "Success" if success else "Failure",
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class StatusError(Exception):
    """An error response of the apiserver: an HTTP status and its Status body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: JsonObj | None = None,
        continue_token: str = "",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.body = status_body(code, reason, message, details=details, continue_token=continue_token)


def not_found(resource: str, name: str) -> StatusError:
    """``errors.NewNotFound`` (what ``bind-notfound.json`` recorded)."""
    return StatusError(404, "NotFound", f'{resource} "{name}" not found', details={"name": name, "kind": resource})


def conflict(resource: str, name: str, cause: str) -> StatusError:
    """``errors.NewConflict`` (what ``bind-conflict.json`` recorded)."""
    message = f'Operation cannot be fulfilled on {resource} "{name}": {cause}'
    return StatusError(409, "Conflict", message, details={"name": name, "kind": resource})


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def too_large_resource_version(requested: int, current: int, retry_seconds: int) -> StatusError:
    """``storage.NewTooLargeResourceVersionError``: 504, and Retry-After when retry_seconds."""
    details: JsonObj = {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}
    if retry_seconds:
        details["retryAfterSeconds"] = retry_seconds
    message = f"Timeout: Too large resource version: {requested}, current: {current}"
    return StatusError(504, "Timeout", message, details=details, retry_after=retry_seconds or None)


#: etcd3/errors.go
EXPIRED_LIST: Final = "The resourceVersion for the provided list is too old."
INCONSISTENT_CONTINUE: Final = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)

# Go struct field orders, to keep objects we build or change ordered like the real encoder.
_OBJECT_META_ORDER = (
    "name generateName namespace selfLink uid resourceVersion generation creationTimestamp deletionTimestamp "
    "deletionGracePeriodSeconds labels annotations ownerReferences finalizers clusterName managedFields"
).split()
_POD_SPEC_ORDER = (
    "volumes initContainers containers ephemeralContainers restartPolicy terminationGracePeriodSeconds "
    "activeDeadlineSeconds dnsPolicy nodeSelector serviceAccountName serviceAccount automountServiceAccountToken "
    "nodeName hostNetwork hostPID hostIPC shareProcessNamespace securityContext imagePullSecrets hostname "
    "subdomain affinity schedulerName tolerations hostAliases priorityClassName priority dnsConfig readinessGates "
    "runtimeClassName enableServiceLinks preemptionPolicy overhead topologySpreadConstraints setHostnameAsFQDN os"
).split()
_POD_STATUS_ORDER = (
    "phase conditions message reason nominatedNodeName hostIP podIP podIPs startTime initContainerStatuses "
    "containerStatuses qosClass ephemeralContainerStatuses"
).split()


def _reorder(d: JsonObj, order: list[str]) -> JsonObj:
    """``d`` with its keys in Go struct order (unknown keys last, in their order)."""
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(order))))


def _dig(obj: JsonObj, *path: str) -> Any:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


# -- resource types and selectors ------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """What differs between nodes and pods: keys, selectable fields, the BOOKMARK body."""

    resource: str
    kind: str
    namespaced: bool
    etcd_prefix: str
    #: field selector label -> value (``ToSelectableFields``)
    fields: Mapping[str, Callable[[JsonObj], str]]
    #: Go ``map[string]string`` fields (the encoder sorts map keys)
    map_paths: tuple[tuple[str, ...], ...]
    #: spec and status of the zero-valued object a BOOKMARK carries
    bookmark_body: JsonObj

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def type_prefix(self) -> bytes:
        """What turns an encoded list item into a standalone object: ``{"kind":..,"apiVersion":..,``."""
        return b'{"kind":"' + self.kind.encode() + b'","apiVersion":"v1",'

    def key(self, namespace: str | None, name: str) -> str:
        return f"{self.etcd_prefix}{namespace}/{name}" if self.namespaced else self.etcd_prefix + name

    def key_of(self, obj: JsonObj) -> str:
        return self.key(obj["metadata"].get("namespace"), obj["metadata"]["name"])

    def prefix(self, namespace: str | None) -> str:
        """The etcd key prefix a list or watch ranges over."""
        return f"{self.etcd_prefix}{namespace}/" if self.namespaced and namespace else self.etcd_prefix

    def bookmark(self, rv: int) -> JsonObj:
        return {"metadata": {"resourceVersion": str(rv), "creationTimestamp": None}, **copy.deepcopy(self.bookmark_body)}


def _pod_ip(pod: JsonObj) -> str:
    ips = _dig(pod, "status", "podIPs") or []
    return str(ips[0].get("ip", "")) if ips else ""


NODES: Final = ResourceType(
    resource="nodes",
    kind="Node",
    namespaced=False,
    etcd_prefix="/registry/minions/",
    fields={
        "metadata.name": lambda o: str(o["metadata"]["name"]),
        "spec.unschedulable": lambda o: "true" if _dig(o, "spec", "unschedulable") else "false",
    },
    map_paths=(("metadata", "labels"), ("metadata", "annotations"), ("status", "capacity"), ("status", "allocatable")),
    # exactly the recorded BOOKMARK: NodeStatus' struct fields have no omitempty effect
    bookmark_body={
        "spec": {},
        "status": {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": dict.fromkeys(
                "machineID systemUUID bootID kernelVersion osImage containerRuntimeVersion kubeletVersion "
                "kubeProxyVersion operatingSystem architecture".split(),
                "",
            ),
        },
    },
)
PODS: Final = ResourceType(
    resource="pods",
    kind="Pod",
    namespaced=True,
    etcd_prefix="/registry/pods/",
    fields={
        "metadata.name": lambda o: str(o["metadata"]["name"]),
        "metadata.namespace": lambda o: str(o["metadata"].get("namespace", "")),
        "spec.nodeName": lambda o: str(_dig(o, "spec", "nodeName") or ""),
        "spec.restartPolicy": lambda o: str(_dig(o, "spec", "restartPolicy") or ""),
        "spec.schedulerName": lambda o: str(_dig(o, "spec", "schedulerName") or ""),
        "spec.serviceAccountName": lambda o: str(_dig(o, "spec", "serviceAccountName") or ""),
        "status.phase": lambda o: str(_dig(o, "status", "phase") or ""),
        "status.podIP": _pod_ip,
        "status.nominatedNodeName": lambda o: str(_dig(o, "status", "nominatedNodeName") or ""),
    },
    map_paths=(("metadata", "labels"), ("metadata", "annotations"), ("spec", "nodeSelector")),
    bookmark_body={"spec": {"containers": None}, "status": {}},  # PodSpec.containers has no omitempty
)
#: pods' field label conversion also accepts the old v1 name of spec.nodeName
_FIELD_ALIASES: Final = {"spec.host": "spec.nodeName"}

_LABEL_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_LABEL_TERMS = re.compile(r",(?![^(]*\))")


@dataclass(frozen=True)
class Selector:
    """A parsed ``fieldSelector`` and ``labelSelector`` (equality, inequality, existence, in/notin)."""

    #: (field, equals?, value): ``spec.nodeName!=`` is ("spec.nodeName", False, "")
    fields: tuple[tuple[str, bool, str], ...] = ()
    #: (key, operator, values) with operator one of = != in notin exists !
    labels: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.fields and not self.labels

    @classmethod
    def parse(cls, rt: ResourceType, field_selector: str = "", label_selector: str = "") -> Selector:
        """Parse both selectors; a bad one is a 400 as on the real server."""
        fields: list[tuple[str, bool, str]] = []
        for term in filter(None, field_selector.split(",")):
            match = re.match(r"^(.*?)(!=|==|=)(.*)$", term)
            if not match:
                raise bad_request(f"invalid selector: '{field_selector}'; can't understand '{term}'")
            name, op, value = match.groups()
            name = _FIELD_ALIASES.get(name, name) if rt is PODS else name
            if name not in rt.fields:
                raise bad_request(f"field label not supported: {name}")
            fields.append((name, op != "!=", value))
        labels: list[tuple[str, str, frozenset[str]]] = []
        for term in filter(None, (t.strip() for t in _LABEL_TERMS.split(label_selector))):
            set_match = _LABEL_SET.match(term)
            if set_match:
                key, op, values = set_match.groups()
                labels.append((key, op, frozenset(v.strip() for v in values.split(","))))
            elif eq_match := re.match(r"^([^!=\s]+)\s*(!=|==|=)\s*(\S*)$", term):
                key, op, value = eq_match.groups()
                labels.append((key, "!=" if op == "!=" else "=", frozenset([value])))
            elif re.match(r"^!?[^!=\s(),]+$", term):
                labels.append((term.lstrip("!"), "!" if term.startswith("!") else "exists", frozenset()))
            else:
                raise bad_request(f"unable to parse requirement: {term!r}")
        return cls(tuple(fields), tuple(labels))

    def matches(self, rt: ResourceType, obj: JsonObj) -> bool:
        for name, equals, value in self.fields:
            if (rt.fields[name](obj) == value) != equals:
                return False
        labels: Mapping[str, str] = obj["metadata"].get("labels") or {}
        for key, op, values in self.labels:
            present = key in labels
            ok = {
                "=": present and labels.get(key) in values,
                "!=": not present or labels.get(key) not in values,
                "in": present and labels.get(key) in values,
                "notin": not present or labels.get(key) not in values,
                "exists": present,
                "!": not present,
            }[op]
            if not ok:
                return False
        return True


# -- stored objects, events, watches -----------------------------------------------------------


class Stored:
    """One immutable stored object (never mutate ``obj``) and its cached JSON encoding."""

    __slots__ = ("obj", "_json")

    def __init__(self, obj: JsonObj) -> None:
        self.obj = obj
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        """The object as a list item (no kind/apiVersion), compact, no newline."""
        if self._json is None:
            self._json = go_json(self.obj)
        return self._json


@dataclass(frozen=True)
class Event:
    """One write: what etcd's watch (and so the watch cache) saw at revision ``rv``."""

    rv: int
    type: EventType
    rt: ResourceType
    key: str
    #: the new state; for DELETED the last state stamped with the deletion revision
    stored: Stored
    prev: Stored | None

    @property
    def kind(self) -> str:
        return self.rt.kind

    @property
    def object(self) -> JsonObj:
        """A deep copy of the object the event carries."""
        return copy.deepcopy(self.stored.obj)


class Watch:
    """One open watch: its range and filter, and the encoded lines waiting to be written."""

    def __init__(self, rt: ResourceType, prefix: str, selector: Selector, bookmarks: bool) -> None:
        self.rt, self.prefix, self.selector, self.bookmarks = rt, prefix, selector, bookmarks
        self.queue: deque[bytes] = deque()
        self.state: WatchState = "open"

    def push(self, type_: str, stored: Stored) -> None:
        self.queue.append(
            b'{"type":"' + type_.encode() + b'","object":' + self.rt.type_prefix + stored.json[1:] + b"}\n"
        )

    def push_error(self, error: StatusError) -> None:
        self.queue.append(b'{"type":"ERROR","object":' + go_json(error.body) + b"}\n")

    def offer(self, event: Event) -> None:
        """Queue ``event`` as ``cacheWatcher.convertToWatchEvent`` would send it, if at all."""
        if not event.key.startswith(self.prefix):
            return
        now = event.type != "DELETED" and self.selector.matches(self.rt, event.stored.obj)
        before = event.prev is not None and self.selector.matches(self.rt, event.prev.obj)
        if now:
            self.push("MODIFIED" if before else "ADDED", event.stored)
        elif before:
            assert event.prev is not None
            gone = event.stored if event.type == "DELETED" else Stored(_with_rv(event.prev.obj, event.rv))
            self.push("DELETED", gone)


@dataclass(frozen=True)
class ListResult:
    """One list response."""

    rt: ResourceType
    items: list[Stored]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None

    def encode(self) -> bytes:
        meta: JsonObj = {"resourceVersion": str(self.resource_version)}
        if self.continue_token:
            meta["continue"] = self.continue_token
        if self.remaining is not None:
            meta["remainingItemCount"] = self.remaining
        head = b'{"kind":"' + self.rt.list_kind.encode() + b'","apiVersion":"v1","metadata":' + go_json(meta)
        return head + b',"items":[' + b",".join(s.json for s in self.items) + b"]}\n"


def _with_rv(obj: JsonObj, rv: int) -> JsonObj:
    """``obj`` with ``metadata.resourceVersion`` = rv (shares everything else)."""
    meta = {**obj["metadata"], "resourceVersion": str(rv)}
    return {**obj, "metadata": _reorder(meta, _OBJECT_META_ORDER)}


def _normalise(rt: ResourceType, obj: JsonObj) -> JsonObj:
    """Strip kind/apiVersion, order metadata as Go does and sort Go maps' keys (in place)."""
    obj.pop("kind", None)
    obj.pop("apiVersion", None)
    obj["metadata"] = _reorder(obj.setdefault("metadata", {}), _OBJECT_META_ORDER)
    for path in rt.map_paths:
        parent = _dig(obj, *path[:-1])
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), dict):
            parent[path[-1]] = dict(sorted(parent[path[-1]].items()))
    return obj


def encode_continue(key: str, prefix: str, rv: int) -> str:
    """etcd3 ``encodeContinue``: base64url (no padding) of ``{"v","rv","start"}``."""
    token = go_json({"v": "meta.k8s.io/v1", "rv": rv, "start": key[len(prefix) :]})
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def decode_continue(token: str, prefix: str) -> tuple[str, int]:
    """etcd3 ``decodeContinue``: the etcd key to resume at and the revision to read at."""

    def invalid(why: str) -> StatusError:
        return bad_request(f"invalid continue token: continue key is not valid: {why}")

    try:
        if not re.fullmatch(r"[A-Za-z0-9_-]*", token):
            raise binascii.Error("illegal base64 data")
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid(str(exc)) from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        version = data.get("v", "") if isinstance(data, dict) else ""
        raise invalid(f'server does not recognize this encoded version "{version}"')
    rv, start = data.get("rv", 0), data.get("start", "")
    if not isinstance(rv, int) or rv == 0:
        raise invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise invalid("encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key:  # no climbing out of the listed prefix
        raise invalid(start)
    return prefix + key[1:], rv


def parse_resource_version(text: str) -> int | None:
    """A resourceVersion parameter: None when empty; 400 when not an unsigned integer."""
    if text == "":
        return None
    if not text.isdigit():
        detail = f'resourceVersion: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": invalid syntax'
        raise bad_request(f"invalid resource version: {detail}")
    return int(text)


# -- the store -------------------------------------------------------------------------------


class ClusterStore:
    """Nodes and pods, the revision counter, the event log and the open watches.

    Thread-safe: everything runs under ``cond``, which is notified on every change.
    """

    #: how long a list waits for a resourceVersion the watch cache has not reached yet
    too_large_rv_wait: float = 3.0

    def __init__(self, *, initial_rv: int, nodes: Iterable[JsonObj], pods: Iterable[JsonObj]) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.rv = initial_rv
        self.compacted_rv = initial_rv
        self.log: list[Event] = []
        self.watches: set[Watch] = set()
        #: the state before the first logged event (seeded objects keep their recorded rv)
        self._seed: dict[str, dict[str, Stored]] = {NODES.resource: {}, PODS.resource: {}}
        for rt, objs in ((NODES, nodes), (PODS, pods)):
            for obj in objs:
                clean = _normalise(rt, copy.deepcopy(obj))
                if rt.namespaced:
                    clean["metadata"].setdefault("namespace", "default")
                self._seed[rt.resource][rt.key_of(clean)] = Stored(clean)
        self._objects = {resource: dict(seed) for resource, seed in self._seed.items()}

    # -- writes (lock held by callers of _commit) -------------------------------------------

    def _commit(self, rt: ResourceType, type_: EventType, key: str, obj: JsonObj, prev: Stored | None) -> Stored:
        """Bump the revision, store, log and fan the event out to the watches."""
        self.rv += 1
        stored = Stored(_with_rv(obj, self.rv))
        if type_ == "DELETED":
            del self._objects[rt.resource][key]
        else:
            self._objects[rt.resource][key] = stored
        event = Event(self.rv, type_, rt, key, stored, prev)
        self.log.append(event)
        for watch in self.watches:
            if watch.rt is rt and watch.state == "open":
                watch.offer(event)
        self.cond.notify_all()
        return stored

    def create(self, rt: ResourceType, obj: JsonObj) -> JsonObj:
        """Create ``obj`` (uid and creationTimestamp filled in when missing): one ADDED event."""
        obj = _normalise(rt, copy.deepcopy(obj))
        meta = obj["metadata"]
        if not meta.get("name"):
            raise ValueError("metadata.name is required")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.pop("resourceVersion", None)
        key = rt.key_of(obj)
        with self.cond:
            if key in self._objects[rt.resource]:
                raise ValueError(f'{rt.resource} "{meta["name"]}" already exists')
            return copy.deepcopy(self._commit(rt, "ADDED", key, obj, None).obj)

    def update(self, rt: ResourceType, key: str, fn: Callable[[JsonObj], JsonObj | None]) -> JsonObj:
        """Apply ``fn`` to a copy (it may mutate it or return a new object): one MODIFIED
        event, unless nothing changed (then, as in etcd, nothing is written)."""
        with self.cond:
            prev = self._objects[rt.resource].get(key)
            if prev is None:
                raise KeyError(key)
            draft = copy.deepcopy(prev.obj)
            result = fn(draft)
            new = _normalise(rt, draft if result is None else result)
            if rt.key_of(new) != key:
                raise ValueError("name and namespace cannot change")
            new = _with_rv(new, int(prev.obj["metadata"]["resourceVersion"]))
            if new == prev.obj:
                return copy.deepcopy(prev.obj)
            return copy.deepcopy(self._commit(rt, "MODIFIED", key, new, prev).obj)

    def delete(self, rt: ResourceType, key: str) -> JsonObj:
        """Delete at once (no grace period, no finalizers): one DELETED event."""
        with self.cond:
            prev = self._objects[rt.resource].get(key)
            if prev is None:
                raise KeyError(key)
            return copy.deepcopy(self._commit(rt, "DELETED", key, prev.obj, prev).obj)

    def clone_nodes(self, count: int, template_name: str) -> list[str]:
        """Create ``count`` copies of a node, numbered after the highest existing name."""
        match = re.fullmatch(r"(.*?)(\d+)", template_name)
        if match is None:
            raise ValueError(f"{template_name!r} does not end in a number")
        stem, width = match.group(1), len(match.group(2))
        with self.cond:
            template = self._objects[NODES.resource].get(NODES.key(None, template_name))
            if template is None:
                raise KeyError(template_name)
            taken = [re.fullmatch(re.escape(stem) + r"(\d+)", k[len(NODES.etcd_prefix) :]) for k in self._objects["nodes"]]
            first = max((int(m.group(1)) for m in taken if m), default=-1) + 1
            text, created = json.dumps(template.obj), now_rfc3339()
            names = []
            for number in range(first, first + count):
                name = f"{stem}{number:0{width}d}"
                node = json.loads(text)
                meta = node["metadata"]
                meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=created)
                if "kubernetes.io/hostname" in meta.get("labels", {}):
                    meta["labels"]["kubernetes.io/hostname"] = name
                for address in _dig(node, "status", "addresses") or []:
                    if address.get("type") == "Hostname":
                        address["address"] = name
                self._commit(NODES, "ADDED", NODES.key(None, name), node, None)
                names.append(name)
            return names

    def bind(self, namespace: str, name: str, body: bytes) -> None:
        """``POST pods/<name>/binding`` as the pod registry's ``BindingREST`` does it."""
        try:
            binding = json.loads(body)
            if not isinstance(binding, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from None
        meta = binding.get("metadata") or {}
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if meta.get("name", "") != name:
            raise bad_request("name in URL does not match name in Binding object")
        node = (binding.get("target") or {}).get("name", "")
        if not node:  # ValidatePodBinding's aggregate is not a StatusError: a 500 without reason
            raise StatusError(500, "", "target.name: Required value")
        key = PODS.key(namespace, name)
        with self.cond:
            prev = self._objects[PODS.resource].get(key)
            if prev is None:
                raise not_found("pods", name)
            pod = prev.obj
            for field, want, have in (
                ("UID", meta.get("uid", ""), pod["metadata"].get("uid", "")),
                ("ResourceVersion", meta.get("resourceVersion", ""), pod["metadata"].get("resourceVersion", "")),
            ):
                if want and want != have:  # storage.Preconditions.Check -> InterpretUpdateError
                    why = f"Precondition failed: {field} in precondition: {want}, {field} in object meta: {have}"
                    cause = "StorageError: invalid object, Code: 4, Key: "
                    cause += f"{key}, ResourceVersion: 0, AdditionalErrorMsg: {why}"
                    raise conflict("pods", name, cause)
            if pod["metadata"].get("deletionTimestamp"):
                raise conflict("pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host")
            if _dig(pod, "spec", "nodeName"):
                raise conflict("pods/binding", name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
            new = copy.deepcopy(pod)
            new["spec"] = _reorder({**new.get("spec", {}), "nodeName": node}, _POD_SPEC_ORDER)
            if meta.get("annotations"):
                new["metadata"]["annotations"] = {**new["metadata"].get("annotations", {}), **meta["annotations"]}
            status = new.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
            scheduled = {  # podutil.UpdatePodCondition replaces the condition as a whole
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == "True" else now_rfc3339(),
            }
            status["conditions"] = [scheduled if c is old else c for c in conditions] if old else [*conditions, scheduled]
            new["status"] = _reorder(status, _POD_STATUS_ORDER)
            self._commit(PODS, "MODIFIED", key, _normalise(PODS, new), prev)

    # -- reads --------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Stored:
        with self.cond:
            stored = self._objects[rt.resource].get(rt.key(namespace, name))
        if stored is None:
            raise not_found(rt.resource, name)
        return stored

    def snapshot(self, rt: ResourceType) -> dict[Any, JsonObj]:
        """Deep copies of the current objects in key order, by name (nodes) or by
        ``(namespace, name)`` (pods)."""
        with self.cond:
            items = sorted(self._objects[rt.resource].items())
        if rt.namespaced:
            return {(s.obj["metadata"]["namespace"], s.obj["metadata"]["name"]): copy.deepcopy(s.obj) for _, s in items}
        return {s.obj["metadata"]["name"]: copy.deepcopy(s.obj) for _, s in items}

    def _state_at(self, rt: ResourceType, rv: int) -> dict[str, Stored]:
        """The objects as they were at revision ``rv`` (seed state + the log up to rv)."""
        if rv >= self.rv:
            return self._objects[rt.resource]
        state = dict(self._seed[rt.resource])
        for event in self.log[: bisect.bisect_right(self.log, rv, key=lambda e: e.rv)]:
            if event.rt is rt:
                if event.type == "DELETED":
                    state.pop(event.key, None)
                else:
                    state[event.key] = event.stored
        return state

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        selector: Selector,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        match: str = "",
    ) -> ListResult:
        """One list call; raises :class:`StatusError` like the apiserver does."""
        requested = parse_resource_version(resource_version)
        forbidden = "resourceVersionMatch: Forbidden: resourceVersionMatch"
        problems = [  # ValidateListOptions
            problem
            for problem, bad in (
                (f'resourceVersionMatch: Unsupported value: "{match}"', match not in ("Exact", "NotOlderThan")),
                (f"{forbidden} is forbidden unless resourceVersion is provided", requested is None),
                (f"{forbidden} is forbidden when continue is provided", bool(continue_token)),
                (f'{forbidden} "exact" is forbidden for resourceVersion "0"', match == "Exact" and requested == 0),
            )
            if match and bad
        ]
        if problems:
            message = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise StatusError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {message}')
        prefix = rt.prefix(namespace)
        # Cacher.GetList delegates to etcd unless rv is set and neither continue, limit (rv > 0) nor Exact is
        from_cache = not continue_token and requested is not None and not (limit > 0 and requested > 0)
        from_cache = from_cache and match != "Exact"
        with self.cond:
            if from_cache:  # the watch cache: waits to be fresh enough, ignores limit
                assert requested is not None
                if not self.cond.wait_for(lambda: self.rv >= requested, self.too_large_rv_wait):
                    raise too_large_resource_version(requested, self.rv, 1)
                items = [s for k, s in sorted(self._objects[rt.resource].items()) if k.startswith(prefix)]
                return ListResult(rt, [s for s in items if selector.matches(rt, s.obj)], self.rv)
            return self._list_storage(rt, prefix, selector, limit, continue_token, resource_version, requested, match)

    def _list_storage(
        self,
        rt: ResourceType,
        prefix: str,
        selector: Selector,
        limit: int,
        continue_token: str,
        resource_version: str,
        requested: int | None,
        match: str,
    ) -> ListResult:
        """etcd3 ``store.GetList``."""
        start, read_rv, exact = prefix, self.rv, False
        if continue_token:
            start, continue_rv = decode_continue(continue_token, prefix)
            if resource_version not in ("", "0"):
                raise bad_request("specifying resource version is not allowed when using continue")
            if continue_rv > 0:  # -1: "continue at the latest revision" (after a 410)
                read_rv, exact = continue_rv, True
        elif requested and (match == "Exact" or (not match and limit > 0)):
            read_rv, exact = requested, True
        if exact and read_rv < self.compacted_rv:
            if continue_token:
                raise StatusError(
                    410, "Expired", INCONSISTENT_CONTINUE, continue_token=encode_continue(start, prefix, -1)
                )
            raise StatusError(410, "Expired", EXPIRED_LIST)
        if exact and read_rv > self.rv:  # etcd's own error, not a StatusError: a bare 500
            raise StatusError(500, "", "etcdserver: mvcc: required revision is a future revision")
        if requested and requested > self.rv:
            raise too_large_resource_version(requested, self.rv, 0)
        state = self._state_at(rt, read_rv)
        keys = sorted(k for k in state if k.startswith(prefix))
        first = bisect.bisect_left(keys, start)
        items: list[Stored] = []
        last_key, has_more = "", False
        for key in keys[first:]:
            if limit > 0 and len(items) >= limit:
                has_more = True
                break
            last_key = key
            if selector.matches(rt, state[key].obj):
                items.append(state[key])
        if not has_more:
            return ListResult(rt, items, read_rv)
        remaining = len(keys) - first - limit if selector.empty else None
        return ListResult(rt, items, read_rv, encode_continue(last_key + "\x00", prefix, read_rv), remaining)

    # -- watches ------------------------------------------------------------------------------

    def watch(
        self, rt: ResourceType, namespace: str | None, selector: Selector, resource_version: str, bookmarks: bool
    ) -> Watch:
        """Open a watch (``Cacher.Watch``). Close it with :meth:`close_watch`."""
        rv = parse_resource_version(resource_version) or 0
        watch = Watch(rt, rt.prefix(namespace), selector, bookmarks)
        with self.cond:
            if rv == 0:
                for key, stored in sorted(self._objects[rt.resource].items()):
                    if key.startswith(watch.prefix) and selector.matches(rt, stored.obj):
                        watch.push("ADDED", stored)
            elif rv < self.compacted_rv:  # 200, then one ERROR event, then the end
                watch.push_error(StatusError(410, "Expired", f"too old resource version: {rv} ({self.compacted_rv})"))
                watch.state = "ended"
            else:
                for event in self.log[bisect.bisect_right(self.log, rv, key=lambda e: e.rv) :]:
                    if event.rt is rt:
                        watch.offer(event)
            self.watches.add(watch)
            self.cond.notify_all()  # FakeApiServer.wait_for_watches waits on this
        return watch

    def next_lines(self, watch: Watch, timeout: float) -> tuple[list[bytes], WatchState]:
        """Block until ``watch`` has lines or changes state (or ``timeout``); take its lines."""
        with self.cond:
            self.cond.wait_for(lambda: bool(watch.queue) or watch.state != "open", timeout)
            if watch.state == "dropped":
                return [], "dropped"
            lines = list(watch.queue)
            watch.queue.clear()
            return lines, watch.state

    def close_watch(self, watch: Watch) -> None:
        with self.cond:
            self.watches.discard(watch)
            self.cond.notify_all()

    def bookmark(self) -> int:
        """A BOOKMARK at the current revision to every open watch that allows bookmarks."""
        with self.cond:
            for watch in self.watches:
                if watch.state == "open" and watch.bookmarks:
                    watch.push("BOOKMARK", Stored(watch.rt.bookmark(self.rv)))
            self.cond.notify_all()
            return self.rv

    def end_watches(self, wait: float = 2.0) -> int:
        """End every open watch cleanly (after what is already queued); wait until they are."""
        return self._stop_watches("ended", wait)

    def drop_watches(self, wait: float = 2.0) -> int:
        """Mark every watch to be reset without a clean end; wait until the streams are gone."""
        return self._stop_watches("dropped", wait)

    def _stop_watches(self, state: WatchState, wait: float) -> int:
        with self.cond:
            targets = [w for w in self.watches if w.state == "open" or state == "dropped"]
            for watch in targets:
                watch.state = state
            self.cond.notify_all()
            self.cond.wait_for(lambda: not any(w in self.watches for w in targets), wait)
            return len(targets)

    def compact(self) -> int:
        """Forget history up to the current revision (as etcd compaction + watch cache eviction)."""
        with self.cond:
            self.compacted_rv = self.rv
            return self.rv
