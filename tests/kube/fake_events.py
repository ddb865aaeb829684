"""events.k8s.io/v1 Events in the fake API server: created as the real v1.24 server validates
them (ValidateEventCreate), kept for tests to read."""

from __future__ import annotations

import json
import threading
import uuid

from .fake_store import JsonObj, StatusError, now_rfc3339


class EventStore:
    """The Events created through ``POST /apis/events.k8s.io/v1/namespaces/<ns>/events``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rv = 1_000_000  # Events live in their own etcd prefix here
        self._created: list[JsonObj] = []

    def created(self) -> list[JsonObj]:
        with self._lock:
            return list(self._created)

    def create(self, namespace: str, body: bytes) -> JsonObj:
        """Validate and store an events.k8s.io/v1 Event (ValidateEventCreate, v1.24)."""
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise StatusError(400, "BadRequest", f"the object provided is unrecognized: {exc}") from None
        if not isinstance(event, dict) or event.get("kind") != "Event" or event.get("apiVersion") != "events.k8s.io/v1":
            raise StatusError(400, "BadRequest", "the object provided is unrecognized (wrong kind or apiVersion)")
        meta = event.setdefault("metadata", {})
        if meta.get("namespace", namespace) != namespace:
            raise StatusError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
        problems = []
        if not meta.get("name") and not meta.get("generateName"):
            problems.append("metadata.name: Required value: name or generateName is required")
        for key in ("eventTime", "reportingController", "reportingInstance", "action", "reason"):
            if not event.get(key):
                problems.append(f"{key}: Required value")
        for key in ("reportingInstance", "action", "reason"):
            if len(str(event.get(key, ""))) > 128:
                problems.append(f"{key}: Too long: may not be longer than 128")
        if event.get("type") not in ("Normal", "Warning"):
            problems.append(f"type: Unsupported value: {event.get('type')!r}: supported values: \"Normal\", \"Warning\"")
        if len(str(event.get("note", "")).encode()) > 1024:
            problems.append("note: Too long: may not be longer than 1024")
        regarding = event.get("regarding") or {}
        if regarding.get("namespace") and regarding["namespace"] != namespace:
            problems.append("regarding.namespace: Invalid value: does not match event.namespace")
        if problems:
            name = meta.get("name") or meta.get("generateName", "")
            raise StatusError(
                422, "Invalid", f'Event.events.k8s.io "{name}" is invalid: [{", ".join(problems)}]',
                details={"name": name, "group": "events.k8s.io", "kind": "Event"},
            )
        with self._lock:
            self._rv += 1
            meta.update(
                namespace=namespace,
                name=meta.get("name") or meta["generateName"] + uuid.uuid4().hex[:5],
                uid=str(uuid.uuid4()),
                resourceVersion=str(self._rv),
                creationTimestamp=now_rfc3339(),
            )
            self._created.append(event)
        return event
