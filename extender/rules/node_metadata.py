"""Priority ``node-metadata``: prefer nodes by a number or a time in their metadata.

Reads a node label, a node annotation, or the node's creationTimestamp, and scores by
it: ``highest``/``lowest`` for decimal numbers (``3``, ``2.5``, ``-1``), ``newest``/
``oldest`` for times.

    - type: node-metadata
      params:
        source: label            # label | annotation | creationTimestamp (default label)
        key: example.com/perf    # required unless source is creationTimestamp
        strategy: highest        # highest | lowest | newest | oldest
        default: 0               # optional: used when the node lacks the key

Times are RFC 3339 (``2026-01-31T22:00:00Z``). Label values cannot contain ``:``, so a
label may instead hold integer POSIX epoch seconds (``1767225600``); a value of digits
only is always read as epoch seconds. An annotation may hold either form.

A node without the key scores ``default`` if configured (a number, or an RFC 3339 time or
``now``/``now-30d`` relative to the request time), else it has no value and gets the
lowest score. A value that does not parse raises: the engine applies the rule's
``onError`` (default ``allow``: a neutral score) and logs the node's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.timefmt import parse_time_reference, parse_timestamp
from extender.sdk.params import one_of
from extender.sdk.registry import priority
from extender.sdk.rules import Context, Priority
from extender.view import NodeView, PodView

SOURCES = ("label", "annotation", "creationTimestamp")
STRATEGIES = ("highest", "lowest", "newest", "oldest")
TIME_STRATEGIES = ("newest", "oldest")
_ANCHOR = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class TimeReference:
    """A fixed time, or (``at`` None) an offset from the request's ``now``."""

    at: datetime | None
    offset: timedelta = timedelta(0)

    def resolve(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + self.offset


@dataclass(frozen=True, slots=True)
class MetadataSpec:
    """Validated params of :class:`NodeMetadataPriority`."""

    source: str
    key: str
    strategy: str
    default: Decimal | TimeReference | None = None


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _time_reference(value: Any) -> TimeReference | None:
    if isinstance(value, datetime):  # YAML parses unquoted timestamps itself
        return TimeReference(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if not isinstance(value, str):
        return None
    try:
        if value.strip().startswith("now"):
            return TimeReference(None, parse_time_reference(value, _ANCHOR) - _ANCHOR)
        return TimeReference(parse_timestamp(value))
    except ValueError:
        return None


class NodeMetadataParams(Schema):
    source = fields.String(load_default="label", validate=one_of(SOURCES))
    key = fields.String(validate=validate.Length(min=1, error="must not be empty"))
    strategy = fields.String(required=True, validate=one_of(STRATEGIES))
    default = fields.Raw(allow_none=False)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        source, strategy = data["source"], data["strategy"]
        errors: dict[str, str] = {}
        if source == "creationTimestamp":
            if "key" in data:
                errors["key"] = "not allowed with source creationTimestamp"
            if strategy not in TIME_STRATEGIES:
                errors["strategy"] = "must be newest or oldest for source creationTimestamp"
        elif "key" not in data:
            errors["key"] = f"required for source {source}"
        if "default" in data:
            if strategy in TIME_STRATEGIES and _time_reference(data["default"]) is None:
                errors["default"] = f"must be an RFC 3339 time or a time such as now or now-30d for strategy {strategy}"
            elif strategy not in TIME_STRATEGIES and self._default_number(data["default"]) is None:
                errors["default"] = f"must be a number for strategy {strategy}"
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _default_number(value: Any) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        return _number(str(value))

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> MetadataSpec:
        default: Decimal | TimeReference | None = None
        if "default" in data:
            if data["strategy"] in TIME_STRATEGIES:
                default = _time_reference(data["default"])
            else:
                default = self._default_number(data["default"])
        return MetadataSpec(data["source"], data.get("key", ""), data["strategy"], default)


@priority("node-metadata")
class NodeMetadataPriority(Priority):
    """Score a node by a number or time from its labels, annotations or creationTimestamp."""

    params_schema = NodeMetadataParams

    def __init__(self, params: MetadataSpec) -> None:
        super().__init__(params)
        self.spec = params
        self._sign = 1.0 if params.strategy in ("highest", "newest") else -1.0
        self._times = params.strategy in TIME_STRATEGIES
        self._what = f"{params.source} {params.key}"
        self._default_number = (
            self._sign * float(params.default) if isinstance(params.default, Decimal) else None
        )

    def cache_key(self, pod: PodView, ctx: Context) -> tuple[()] | None:
        # A "now-30d" default moves with the clock: only a fixed default can be cached.
        return None if isinstance(self.spec.default, TimeReference) else ()

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        spec = self.spec
        if spec.source == "creationTimestamp":
            created = node.creation_timestamp
            return self._default(ctx) if created is None else self._sign * created.timestamp()
        text = (node.labels if spec.source == "label" else node.annotations).get(spec.key)
        if text is None:
            return self._default(ctx)
        value = self._parse_time(text) if self._times else _number(text)
        raw = None if value is None else float(value)
        if raw is None or not math.isfinite(raw):
            kind = "an RFC 3339 time or epoch seconds" if self._times else "a number"
            raise ValueError(f"{self._what}={text!r} on node {node.name} is not {kind}")
        return self._sign * raw

    def _default(self, ctx: Context) -> float | None:
        default = self.spec.default
        if isinstance(default, TimeReference):
            return self._sign * default.resolve(ctx.now).timestamp()
        return self._default_number

    @staticmethod
    def _parse_time(text: str) -> float | None:
        text = text.strip()
        if text.isascii() and text.isdigit():
            return float(text)
        try:
            return parse_timestamp(text).timestamp()
        except (ValueError, OverflowError):
            return None
