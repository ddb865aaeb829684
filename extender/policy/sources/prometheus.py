"""Options of a ``type: prometheus`` source (beside the common keys of extender.policy.sources).

    sources:
      prometheus:
        type: prometheus
        url: https://prometheus-k8s.monitoring:9090   # the HTTP API's base (a path prefix is kept)
        queries:                                      # names rules use -> PromQL (else the key is PromQL)
          cpu_usage_avg_5m: node:cpu_usage_percent:avg5m
        nodeLabel: node              # the series label that names the node (default node)
        nodeLabelValue: name         # name (default) | address: an instance address matched to node addresses
        sampleTime: sample           # sample (default): a plain selector's own sample time | evaluation
        basicAuth: {username: extender, passwordFile: /etc/prometheus-auth/password}
        bearerTokenFile: /var/run/secrets/prometheus/token   # or basicAuth, not both
        tls: {caFile: /etc/prometheus-tls/ca.crt, certFile: ..., keyFile: ..., serverName: prometheus, insecureSkipVerify: false}
        headers: {X-Scope-OrgID: team-a}

The names follow Prometheus' own ``http_config`` (``basic_auth.password_file``,
``authorization.credentials_file``, ``tls_config``), camelCased. Secrets are read only from
files, never written in the policy, and files are not checked here: a policy may be validated
on a machine that does not have them (the source reports a missing file at fetch time).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from extender.sdk.params import one_of

NODE_LABEL_VALUES = ("name", "address")
SAMPLE_TIMES = ("sample", "evaluation")
#: headers a secret would travel in: those come from basicAuth / bearerTokenFile, read from files
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

_PATH = validate.Length(min=1, error="must be a file path")
#: Prometheus' label name syntax
_LABEL_NAME = validate.Regexp(r"^[a-zA-Z_][a-zA-Z0-9_]*$", error="must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")


class BasicAuthSchema(Schema):
    """``basicAuth``: the password only from a file (Prometheus' ``basic_auth.password_file``)."""

    username = fields.String(required=True, validate=validate.Length(min=1))
    password_file = fields.String(data_key="passwordFile", required=True, validate=_PATH)


class TLSSchema(Schema):
    """``tls``: Prometheus' ``tls_config`` (``ca_file``, ``cert_file``, ``key_file``, ``server_name``,
    ``insecure_skip_verify``)."""

    ca_file = fields.String(data_key="caFile", validate=_PATH)
    cert_file = fields.String(data_key="certFile", validate=_PATH)
    key_file = fields.String(data_key="keyFile", validate=_PATH)
    server_name = fields.String(data_key="serverName", validate=validate.Length(min=1))
    insecure_skip_verify = fields.Boolean(data_key="insecureSkipVerify", load_default=False)

    @validates_schema
    def _client_pair(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("cert_file" in data) != ("key_file" in data):
            missing = "keyFile" if "cert_file" in data else "certFile"
            raise ValidationError("a client certificate needs both certFile and keyFile", missing)


def _check_headers(headers: dict[str, str]) -> None:
    for name in headers:
        if name.lower() in SECRET_HEADERS:
            raise ValidationError(f"{name} carries a secret: use basicAuth or bearerTokenFile (read from files)")


class PrometheusOptionsSchema(Schema):
    """A Prometheus HTTP API: where, what to ask, how series name nodes, and how to authenticate."""

    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    queries = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.String(validate=validate.Length(min=1, error="must be a PromQL expression")),
        load_default=dict,
    )
    node_label = fields.String(data_key="nodeLabel", load_default="node", validate=_LABEL_NAME)
    node_label_value = fields.String(data_key="nodeLabelValue", load_default="name", validate=one_of(NODE_LABEL_VALUES))
    sample_time = fields.String(data_key="sampleTime", load_default="sample", validate=one_of(SAMPLE_TIMES))
    basic_auth = fields.Nested(BasicAuthSchema, data_key="basicAuth")
    bearer_token_file = fields.String(data_key="bearerTokenFile", validate=_PATH)
    tls = fields.Nested(TLSSchema, load_default=lambda: {"insecure_skip_verify": False})
    headers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", error="not an HTTP header name")),
        values=fields.String(),
        load_default=dict,
        validate=_check_headers,
    )

    @validates_schema
    def _one_credential(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "basic_auth" in data and "bearer_token_file" in data:
            raise ValidationError("use basicAuth or bearerTokenFile, not both", "bearerTokenFile")
