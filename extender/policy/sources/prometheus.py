"""Options of a ``type: prometheus`` source (beside the common keys of extender.policy.sources)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class PrometheusOptionsSchema(Schema):
    """``url`` of the Prometheus HTTP API; the rest is filled in with the source's implementation."""

    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    queries = fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.String(), load_default=dict)
