"""Rendering deploy/chart/extender offline, through the Helm library helm-python-sdk embeds.

One function reaches past the SDK's public API: ``Chart.render`` (0.2.2) takes no Kubernetes
version or API versions, which the chart's output depends on (image tag, config apiVersion,
1.27+ fields, the monitoring CRDs), while the native ``helm_render`` call it wraps does. When
the SDK grows those parameters, :func:`render_chart` becomes one ``chart.render(...)`` call.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

CHART = Path(__file__).resolve().parents[1] / "deploy" / "chart" / "extender"
RELEASE = "extender"
NAMESPACE = "extender-system"
# What a cluster with the Prometheus Operator and cert-manager would report (.Capabilities.APIVersions).
API_VERSIONS = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor",
                "monitoring.coreos.com/v1/PrometheusRule", "cert-manager.io/v1/Certificate"]  # fmt: skip


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_templates(values: dict[str, Any], kube_version: str) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template --kube-version`` (an install)."""
    options = {"name": RELEASE, "namespace": NAMESPACE, "kube_version": kube_version,
               "api_versions": API_VERSIONS, "is_install": True}  # fmt: skip
    # Reaches past the public API: see the module docstring.
    rendered = _native.call_string("helm_render", chart()._raw(), json.dumps(values), json.dumps(options))
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def render_chart(values: dict[str, Any], kube_version: str) -> tuple[list[dict[str, Any]], str]:
    """(the objects, NOTES.txt) the chart renders with ``values`` for Kubernetes ``kube_version``."""
    templates = render_templates(values, kube_version)
    notes = next((text for path, text in templates.items() if path.endswith("NOTES.txt")), "")
    docs = [
        doc
        for path, text in sorted(templates.items())
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return docs, notes


def render_failure(values: dict[str, Any], kube_version: str) -> str:
    """The error message of a render that must fail."""
    try:
        render_templates(values, kube_version)
    except helm.HelmError as error:
        return str(error)
    raise AssertionError(f"rendering {values} for {kube_version} succeeded")
