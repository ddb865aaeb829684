"""Predicate ``node-maintenance``: keep pods off nodes that are, or are about to be, in maintenance.

A node is rejected when it carries one of the configured labels or annotations (with any
value, or only with the listed ``values``), or when ``now`` falls in its maintenance window
extended by ``leadTime`` before its start: a pod that lands just before the window opens
would only be evicted again. A node without the window annotation(s) is not in maintenance.

    - type: node-maintenance
      params:
        labels:
        - key: extender.dev/maintenance            # any value
        - key: example.com/state
          values: [draining, maintenance]          # only these values
        annotations:
        - key: extender.dev/maintenance
        window:
          annotation: extender.dev/maintenance-window  # "2026-12-01T22:00:00Z/2026-12-02T02:00:00Z"
          # or: {startAnnotation: example.com/maintenance-start, endAnnotation: example.com/maintenance-end}
          leadTime: 30m

A malformed window annotation raises ``ValueError``, so the rule's ``onError`` decides
(deny by default): a node whose maintenance plan cannot be read is not trusted.
Rejections are unresolvable: evicting pods does not end a maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.timefmt import parse_timestamp
from extender.sdk.params import Duration, StrictString
from extender.sdk.registry import predicate
from extender.sdk.rules import Context, Predicate, Rejection
from extender.view import NodeView, PodView

_NOT_EMPTY = validate.Length(min=1, error="must not be empty")


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """A label or annotation key; ``values`` None matches any value."""

    key: str
    values: frozenset[str] | None = None

    def matches(self, found: Mapping[str, str]) -> bool:
        value = found.get(self.key)
        return value is not None and (self.values is None or value in self.values)


@dataclass(frozen=True, slots=True)
class Window:
    """Where a node's window is read from: one interval annotation, or a (start, end) pair."""

    lead_time: timedelta
    annotation: str | None = None
    pair: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceParams:
    labels: tuple[KeyMatch, ...] = ()
    annotations: tuple[KeyMatch, ...] = ()
    window: Window | None = None


class KeyMatchSchema(Schema):
    key = fields.String(required=True, validate=_NOT_EMPTY)
    values = fields.List(
        StrictString(), validate=validate.Length(min=1, error="list at least one value, or omit values to match any")
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> KeyMatch:
        values = data.get("values")
        return KeyMatch(data["key"], frozenset(values) if values is not None else None)


class WindowSchema(Schema):
    annotation = fields.String(validate=_NOT_EMPTY)
    start_annotation = fields.String(data_key="startAnnotation", validate=_NOT_EMPTY)
    end_annotation = fields.String(data_key="endAnnotation", validate=_NOT_EMPTY)
    lead_time = Duration(
        data_key="leadTime",
        load_default=timedelta(0),
        validate=validate.Range(min=timedelta(0), error="must not be negative"),
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _one_form(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # Checked on the input so it is reported alongside errors in the fields themselves.
        if not isinstance(original, Mapping):
            return
        interval = "annotation" in original
        start, end = "startAnnotation" in original, "endAnnotation" in original
        if interval and (start or end):
            raise ValidationError("give either annotation or startAnnotation and endAnnotation, not both")
        if not interval and not (start and end):
            raise ValidationError("give annotation, or both startAnnotation and endAnnotation")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Window:
        if "annotation" in data:
            return Window(data["lead_time"], annotation=data["annotation"])
        return Window(data["lead_time"], pair=(data["start_annotation"], data["end_annotation"]))


class NodeMaintenanceParams(Schema):
    labels = fields.List(fields.Nested(KeyMatchSchema), load_default=list)
    annotations = fields.List(fields.Nested(KeyMatchSchema), load_default=list)
    window = fields.Nested(WindowSchema, load_default=None)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _something_to_check(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and not any(original.get(k) for k in ("labels", "annotations", "window")):
            raise ValidationError("give at least one of labels, annotations, window")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> MaintenanceParams:
        return MaintenanceParams(tuple(data["labels"]), tuple(data["annotations"]), data["window"])


def _timestamp(text: str, annotation: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise ValueError(f"annotation {annotation}: not an RFC 3339 timestamp: {text!r}") from None


def _read_window(window: Window, annotations: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """The node's (start, end), None if it has no window; ValueError if it is malformed."""
    if window.annotation is not None:
        value = annotations.get(window.annotation)
        where = f"annotation {window.annotation}"
        if value is None:
            return None
        parts = value.split("/")
        if len(parts) != 2:
            raise ValueError(f"{where}: not an interval START/END: {value!r}")
        start, end = _timestamp(parts[0], window.annotation), _timestamp(parts[1], window.annotation)
    elif window.pair is not None:
        start_key, end_key = window.pair
        start_text, end_text = annotations.get(start_key), annotations.get(end_key)
        if start_text is None and end_text is None:
            return None
        if start_text is None:
            raise ValueError(f"node has annotation {end_key} but not {start_key}")
        if end_text is None:
            raise ValueError(f"node has annotation {start_key} but not {end_key}")
        where = f"annotations {start_key}, {end_key}"
        start, end = _timestamp(start_text, start_key), _timestamp(end_text, end_key)
    else:
        return None
    if end <= start:
        raise ValueError(f"{where}: window end is not after its start")
    return start, end


@predicate("node-maintenance")
class NodeMaintenancePredicate(Predicate):
    """Reject nodes marked for maintenance or in (or near) their maintenance window."""

    params_schema = NodeMaintenanceParams

    _IN_WINDOW = Rejection("node(s) in or near a maintenance window")

    def __init__(self, params: MaintenanceParams) -> None:
        super().__init__(params)
        # (match, rejection) pairs, built once: reasons name only the configured key.
        self._labels = tuple((m, Rejection(f"node(s) had maintenance label {m.key}")) for m in params.labels)
        self._annotations = tuple(
            (m, Rejection(f"node(s) had maintenance annotation {m.key}")) for m in params.annotations
        )
        self._window = params.window

    def cache_key(self, pod: PodView, ctx: Context) -> tuple[()]:
        return ()  # the verdict depends on the node (and the time: see valid_until)

    def valid_until(self, pod: PodView, node: NodeView, ctx: Context) -> datetime | None:
        """The next window edge: where rejection starts (start - leadTime) or ends."""
        if self._window is None:
            return None
        found = _read_window(self._window, node.annotations)
        if found is None:
            return None
        start, end = found
        opens = start - self._window.lead_time
        if ctx.now < opens:
            return opens
        return end if ctx.now < end else None

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        for match, rejection in self._labels:
            if match.matches(node.labels):
                return rejection
        for match, rejection in self._annotations:
            if match.matches(node.annotations):
                return rejection
        if self._window is not None:
            found = _read_window(self._window, node.annotations)
            if found is not None:
                start, end = found
                if start - self._window.lead_time <= ctx.now < end:
                    return self._IN_WINDOW
        return None
