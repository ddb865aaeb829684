"""The options of a ``type: prometheus`` source: defaults, and bad values reported with their path."""

from __future__ import annotations

import pytest

from extender.policy import PolicyError, load_policy_text
from extender.policy.sources import load_sources


def test_defaults() -> None:
    options = load_sources({"prom": {"type": "prometheus", "url": "http://prometheus:9090"}})["prom"].options
    assert options["node_label"] == "node" and options["node_label_value"] == "name"
    assert options["sample_time"] == "sample" and options["queries"] == {} and options["headers"] == {}
    assert options["tls"] == {"insecure_skip_verify": False}
    assert "basic_auth" not in options and "bearer_token_file" not in options


def test_every_option_loads() -> None:
    options = load_sources(
        {
            "prom": {
                "type": "prometheus",
                "url": "https://prometheus.monitoring.svc:9090/prefix",
                "queries": {"cpu_usage_avg_5m": "node:cpu_usage_percent:avg5m"},
                "nodeLabel": "instance",
                "nodeLabelValue": "address",
                "sampleTime": "evaluation",
                "basicAuth": {"username": "extender", "passwordFile": "/etc/auth/password"},
                "tls": {"caFile": "/ca", "certFile": "/c", "keyFile": "/k", "serverName": "prom", "insecureSkipVerify": False},
                "headers": {"X-Scope-OrgID": "team-a"},
            }
        }
    )["prom"].options
    assert options["basic_auth"] == {"username": "extender", "password_file": "/etc/auth/password"}
    assert options["tls"]["server_name"] == "prom" and options["node_label_value"] == "address"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("nodeLabelValue: ip", "sources.prom.nodeLabelValue: must be one of name, address"),
        ("nodeLabel: 'node-name'", "sources.prom.nodeLabel: must be a Prometheus label name"),
        ("sampleTime: now", "sources.prom.sampleTime: must be one of sample, evaluation"),
        ("basicAuth: {username: u, password: hunter2}", "sources.prom.basicAuth.password: unknown field"),
        ("basicAuth: {username: u}", "sources.prom.basicAuth.passwordFile: required"),
        ("bearerToken: abc", "sources.prom.bearerToken: unknown field"),
        ("{basicAuth: {username: u, passwordFile: /p}, bearerTokenFile: /t}".strip("{}"),
         "sources.prom.bearerTokenFile: use basicAuth or bearerTokenFile, not both"),
        ("tls: {certFile: /c}", "sources.prom.tls.keyFile: a client certificate needs both certFile and keyFile"),
        ("tls: {insecureSkipVerify: maybe}", "sources.prom.tls.insecureSkipVerify:"),
        ("headers: {Authorization: Bearer abc}", "sources.prom.headers: Authorization carries a secret"),
        ("queries: {cpu: ''}", "sources.prom.queries.cpu.value: must be a PromQL expression"),
    ],
)  # fmt: skip
def test_bad_options_are_reported_with_their_path(options: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(f"sources:\n  prom: {{type: prometheus, url: 'http://p:9090', {options}}}\n")
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems
