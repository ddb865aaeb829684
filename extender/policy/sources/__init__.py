"""The policy's ``sources:`` section: metric sources by name, each validated by its type's schema.

    sources:
      prometheus:                 # the name rules refer to (params.source)
        type: prometheus          # prometheus | metrics-server | node-annotations
        refreshInterval: 15s      # how often the background refresher fetches (default 15s)
        maxAge: 2m                # older samples are stale: each rule's onStale applies (default 2m)
        timeout: 2s               # per fetch (default 2s; below refreshInterval)
        url: http://prometheus-operated.monitoring:9090   # ...and the type's own keys

Common keys are checked here; every other key belongs to the type, whose schema lives in
this package's module of the same name and rejects what it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validates_schema

from extender.engine.model import SourceSpec, SourceType
from extender.policy.sources.metrics_server import MetricsServerOptionsSchema
from extender.policy.sources.node_annotations import NodeAnnotationsOptionsSchema
from extender.policy.sources.prometheus import PrometheusOptionsSchema
from extender.sdk.params import Duration, one_of

OPTION_SCHEMAS: dict[SourceType, type[Schema]] = {
    "prometheus": PrometheusOptionsSchema,
    "metrics-server": MetricsServerOptionsSchema,
    "node-annotations": NodeAnnotationsOptionsSchema,
}
COMMON_KEYS = ("type", "refreshInterval", "maxAge", "timeout")


class SourceCommonSchema(Schema):
    """The keys every source has; the rest are passed on to the type's schema."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=one_of(tuple(OPTION_SCHEMAS)))
    refresh = Duration(data_key="refreshInterval", load_default=timedelta(seconds=15))
    max_age = Duration(data_key="maxAge", load_default=timedelta(minutes=2))
    timeout = Duration(load_default=timedelta(seconds=2))

    @validates_schema
    def _check_times(self, data: dict[str, Any], **kwargs: Any) -> None:
        refresh, max_age, timeout = data.get("refresh"), data.get("max_age"), data.get("timeout")
        if isinstance(refresh, timedelta) and refresh.total_seconds() < 1:
            raise ValidationError("must be at least 1s", "refreshInterval")
        if isinstance(timeout, timedelta) and timeout.total_seconds() <= 0:
            raise ValidationError("must be greater than 0", "timeout")
        if isinstance(refresh, timedelta) and isinstance(timeout, timedelta) and timeout > refresh:
            raise ValidationError("must not exceed refreshInterval (a fetch would overlap the next)", "timeout")
        if isinstance(refresh, timedelta) and isinstance(max_age, timedelta) and max_age < refresh:
            raise ValidationError(
                "must be at least refreshInterval, or every sample would be stale before the next fetch", "maxAge"
            )


def load_sources(document: Any) -> dict[str, SourceSpec]:
    """Validate a ``sources:`` mapping; raise ValidationError with errors keyed by source name."""
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ValidationError("must be a mapping of source name to its settings")
    specs: dict[str, SourceSpec] = {}
    errors: dict[str, Any] = {}
    for name, raw in document.items():
        if not isinstance(name, str) or not name or "/" in name:
            errors[str(name)] = ["a source name must be a non-empty string without '/'"]
            continue
        if not isinstance(raw, Mapping):
            errors[name] = ["must be a mapping with at least a type"]
            continue
        try:
            common = SourceCommonSchema().load(dict(raw))
        except ValidationError as exc:
            errors[name] = exc.messages
            continue
        options_raw = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
        try:
            options = OPTION_SCHEMAS[common["type"]]().load(options_raw, unknown=RAISE)
        except ValidationError as exc:
            errors[name] = exc.messages
            continue
        specs[name] = SourceSpec(
            name=name,
            type=common["type"],
            refresh_interval=common["refresh"].total_seconds(),
            max_age=common["max_age"].total_seconds(),
            timeout=common["timeout"].total_seconds(),
            options=MappingProxyType(dict(options)),
        )
    if errors:
        raise ValidationError(errors)
    return specs
