"""HTTP routes: bytes in, bytes out. All decisions live in the service and the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from extender import __version__
from extender.codec.common import WireError, encode_json
from extender.service import ExtenderService
from extender.web.body import read_body
from extender.web.errors import json_error

log = logging.getLogger("extender.http")

VERBS = ("filter", "prioritize", "preempt", "bind")
Readiness = Callable[[], tuple[bool, str]]
Health = Callable[[], dict[str, Any]]


def _service() -> ExtenderService:
    service: ExtenderService = current_app.extensions["extender.service"]
    return service


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


def verbs_blueprint(url_prefix: str, max_body_bytes: int) -> Blueprint:
    """``POST {prefix}/{filter,prioritize,preempt,bind}``."""
    bp = Blueprint("verbs", __name__, url_prefix=url_prefix or None)

    @bp.route("/<path:verb>", methods=["POST"])
    def call_verb(verb: str) -> Response:
        if verb not in VERBS:
            return json_error(404, f"unknown verb {verb!r}: this extender serves {', '.join(VERBS)}")
        body = read_body(request, max_body_bytes)
        service = _service()
        handler = getattr(service, verb)
        try:
            return _json(handler(body))
        except WireError as exc:
            log.info("rejected %s request: %s", verb, exc)
            return json_error(400, f"{verb}: {exc}")

    @bp.route("/<path:verb>", methods=["GET", "PUT", "PATCH", "DELETE"])
    def wrong_method(verb: str) -> Response:
        if verb not in VERBS:
            return json_error(404, f"unknown verb {verb!r}: this extender serves {', '.join(VERBS)}")
        response = json_error(405, f"{verb} takes POST with a JSON body (kube-scheduler's ExtenderArgs)")
        response.headers["Allow"] = "POST"
        return response

    return bp


def probes_blueprint(readiness: Readiness, health: Health) -> Blueprint:
    """``GET /healthz`` (alive; reports cache ages), ``/readyz`` (ready to answer), ``/version``."""
    bp = Blueprint("probes", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        # Liveness stays 200 whatever the caches say: a slow API server must not get every
        # replica restarted. The cache ages are there for humans and alerts.
        caches = health()
        return _json(encode_json({"status": "ok", "caches": caches} if caches else {"status": "ok"}))

    @bp.get("/readyz")
    def readyz() -> Response:
        ready, detail = readiness()
        return _json(encode_json({"status": "ready" if ready else "not ready", "detail": detail}), 200 if ready else 503)

    @bp.get("/version")
    def version() -> Response:
        policy = _service().policy
        return _json(
            encode_json(
                {
                    "version": __version__,
                    "policy": {
                        "source": policy.source,
                        "digest": policy.digest,
                        "predicates": [
                            {"name": r.name, "type": r.rule.type_name, "mode": r.mode} for r in policy.predicates
                        ],
                        "priorities": [
                            {"name": r.name, "type": r.rule.type_name, "mode": r.mode, "weight": r.weight}
                            for r in policy.priorities
                        ],
                        "bind": policy.bind_enabled,
                    },
                }
            )
        )

    return bp


def handle_http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTML error pages become JSON (404 for unknown paths, 413, 405...)."""
    status = exc.code or 500
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = exc.description or exc.name
    return json_error(status, message)


def handle_unexpected(exc: Exception) -> Response:
    """A bug, not bad input: log the traceback, answer a JSON 500 (the worker lives on)."""
    log.exception("internal error on %s %s", request.method, request.path)
    return json_error(500, f"internal error: {type(exc).__name__}; see the extender's log")
