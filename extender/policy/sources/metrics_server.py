"""Options of a ``type: metrics-server`` source (metrics.k8s.io through the API client)."""

from __future__ import annotations

from marshmallow import Schema


class MetricsServerOptionsSchema(Schema):
    """No options of its own: it reads ``/apis/metrics.k8s.io/v1beta1/nodes`` with the
    extender's API credentials. Keys rules may read: ``cpu`` and ``memory`` (percent of
    allocatable), ``cpu_cores`` and ``memory_bytes`` (raw usage)."""
