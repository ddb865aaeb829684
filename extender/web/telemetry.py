"""``GET /metrics``: the Prometheus text exposition of every worker's metrics.

Served through Flask (never the worker's fast path): a scrape every few seconds is not the
hot path, and its cost (reading each worker's files) belongs on a thread, not the event loop.
"""

from __future__ import annotations

from flask import Blueprint, Response

from extender.telemetry import metrics

#: where the exposition is served (also on the plain-HTTP probe port; README "Metrics")
METRICS_PATH = "/metrics"


def metrics_blueprint() -> Blueprint:
    """``GET /metrics``."""
    bp = Blueprint("metrics", __name__)

    @bp.get(METRICS_PATH)
    def scrape() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, status=200, content_type=content_type)

    return bp
