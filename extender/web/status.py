"""The read-only status page: ``GET /status`` and ``GET /status/decisions/<id>``.

Plain server-rendered HTML (Jinja, autoescaped: pod names, reasons and everything else from
requests are escaped), no JavaScript. Shows the running policy, readiness, cache and source
health, Event counters, and the last decisions (newest first, searchable by pod with
``?pod=<namespace/name substring>``), each with a detail page: its per-node table when the
record has one, else its summary (rejections per rule and reason, the best node's per-rule
scores). Served on the admin port only (README "Status page"): it shows pod names.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template_string, request

from extender import __version__
from extender.service import ExtenderService
from extender.status.store import DecisionStore
from extender.status.summary import record_summary
from extender.web.errors import json_error
from extender.web.probes import Probes
from extender.web.routes import policy_report, reload_report
from extender.web.status_templates import DETAIL, INDEX

#: the path prefix the admin port serves (and the only one)
STATUS_PATH = "/status"
#: longest ``pod`` search accepted: a namespace (63) and a pod name (253) and the slash
MAX_QUERY = 317


def _policy(service: ExtenderService) -> dict[str, Any]:
    """The running policy with its predicates and priorities in one table."""
    report = policy_report(service.policy)
    rules = [{"kind": "predicate", **rule, "weight": ""} for rule in report["predicates"]]
    rules += [{"kind": "priority", **rule} for rule in report["priorities"]]
    return {"source": report["source"], "digest": report["digest"], "rules": rules, "bind": report["bind"]}


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    # No script, no frames, nothing fetched from elsewhere: the page is only HTML and its own CSS.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _events() -> dict[str, int] | None:
    recorder = current_app.extensions.get("extender.events")
    if recorder is None:
        return None
    return {name: int(getattr(recorder, name, 0)) for name in ("posted", "limited", "dropped", "failed")}


def status_blueprint(store: DecisionStore, probes: Probes) -> Blueprint:
    """The status pages, reading decisions from ``store`` and health from ``probes``."""
    bp = Blueprint("status", __name__)

    @bp.get(STATUS_PATH)
    def index() -> Response:
        query = request.args.get("pod", "")
        if len(query) > MAX_QUERY:
            return json_error(400, f"pod: at most {MAX_QUERY} characters (a namespace/name substring)")
        ready, readiness = probes.readiness()
        health = probes.health_report()
        entries = store.recent(query)
        rows = [{"id": e["id"], "record": e["record"], "summary": record_summary(e["record"])} for e in entries]
        page = render_template_string(
            INDEX,
            title="status",
            version=__version__,
            policy=_policy(current_app.extensions["extender.service"]),
            reload=reload_report(),
            ready=ready,
            readiness=readiness,
            caches=health.get("caches") or {},
            sources=health.get("sources") or {},
            events=_events(),
            query=query,
            rows=rows,
            capacity=getattr(store, "capacity", len(rows)),
        )
        return _html(page)

    @bp.get(f"{STATUS_PATH}/decisions/<entry_id>")
    def detail(entry_id: str) -> Response:
        entry = store.get(entry_id)
        if entry is None:
            return json_error(404, f"no decision {entry_id!r} is kept (the newest are kept; see {STATUS_PATH})")
        record = entry["record"]
        table = record.get("table") if isinstance(record.get("table"), dict) else None
        page = render_template_string(
            DETAIL,
            title=f"decision {entry['id']}",
            version=__version__,
            entry_id=entry["id"],
            record=record,
            summary=record_summary(record),
            table=table,
            fields=_shown_fields(record),
        )
        return _html(page)

    return bp


def _shown_fields(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The record's plain values, as (name, text) rows of the detail page."""
    shown: list[tuple[str, str]] = []
    for key in ("verb", "time", "mode", "outcome", "nodes", "passed", "unknown", "tookMs", "policy", "node", "kept", "error"):
        if key in record and record[key] not in (None, ""):
            shown.append((key, str(record[key])))
    pod = record.get("pod") or {}
    if isinstance(pod, dict):
        shown.insert(1, ("pod", f"{pod.get('namespace', '')}/{pod.get('name', '')} (uid {pod.get('uid', '?')})"))
    return shown
