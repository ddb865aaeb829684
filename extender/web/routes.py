"""HTTP routes: bytes in, bytes out. All decisions live in the service and the engine."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from extender import __version__
from extender.codec.common import encode_json
from extender.engine import Policy
from extender.policy.reload import ReloadStatus
from extender.service import ExtenderService
from extender.telemetry import metrics
from extender.web.body import read_body
from extender.web.errors import json_error
from extender.web.probes import Probes
from extender.web.verbs import VERBS, VerbEndpoint, unsupported_content_type

log = logging.getLogger("extender.http")

#: methods a verb answers with 405 itself (the rest get Werkzeug's 405, made JSON below)
_WRONG_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
#: what each verb's body is, in kube-scheduler's terms (protocol.md §1)
_ARGS = {
    "filter": "ExtenderArgs",
    "prioritize": "ExtenderArgs",
    "preempt": "ExtenderPreemptionArgs",
    "bind": "ExtenderBindingArgs",
}


def _service() -> ExtenderService:
    service: ExtenderService = current_app.extensions["extender.service"]
    return service


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


def policy_report(policy: Policy) -> dict[str, Any]:
    """The running policy as ``/version`` (and the status page) describe it."""
    return {
        "source": policy.source,
        "digest": policy.digest,
        "predicates": [{"name": r.name, "type": r.rule.type_name, "mode": r.mode} for r in policy.predicates],
        "priorities": [
            {"name": r.name, "type": r.rule.type_name, "mode": r.mode, "weight": r.weight} for r in policy.priorities
        ],
        "bind": policy.bind_enabled,
    }


def reload_report() -> dict[str, Any] | None:
    """This worker's policy reload state (loadedAt, lastReload), if it watches a policy file."""
    status: ReloadStatus | None = current_app.extensions.get("extender.reload_status")
    return status.as_dict() if status is not None else None


def verbs_blueprint(endpoint: VerbEndpoint) -> Blueprint:
    """``POST {prefix}/{filter,prioritize,preempt,bind}``, answered by ``endpoint``."""
    bp = Blueprint("verbs", __name__, url_prefix=endpoint.url_prefix or None)

    @bp.route("/explain", methods=["POST"])
    def explain() -> Response:
        """Not a kube-scheduler verb: a person's question, answered through Flask only (the
        worker's fast path takes the paths of :data:`VERBS` alone)."""
        verb = request.args.get("verb", "both")
        unsupported = unsupported_content_type(request.environ.get("CONTENT_TYPE"))
        if unsupported:
            return json_error(415, f"explain: {unsupported}")
        status, body = endpoint.explain(verb, read_body(request, endpoint.max_body_bytes))
        return _json(body, status)

    @bp.route("/<path:verb>", methods=["POST"])
    def call_verb(verb: str) -> Response:
        if verb not in VERBS:
            return json_error(404, f"unknown verb {verb!r}: this extender serves {', '.join(VERBS)}")
        # the WSGI variable: a tenth of the cost of request.headers' lookup
        unsupported = unsupported_content_type(request.environ.get("CONTENT_TYPE"))
        if unsupported:  # before the body is read; counted as VerbEndpoint.answer counts it
            metrics.begin_call()
            metrics.end_call(verb, metrics.BAD_REQUEST, 0.0, request.content_length or 0)
            return json_error(415, f"{verb}: {unsupported}")
        status, body = endpoint.answer(verb, None, read_body(request, endpoint.max_body_bytes))
        return _json(body, status)

    @bp.route("/<path:verb>", methods=_WRONG_METHODS)
    def wrong_method(verb: str) -> Response:
        if verb == "explain":
            response = json_error(405, "explain takes POST with a filter/prioritize body (kube-scheduler's ExtenderArgs)")
            response.headers["Allow"] = "POST"
            return response
        if verb not in VERBS:
            return json_error(404, f"unknown verb {verb!r}: this extender serves {', '.join(VERBS)}")
        response = json_error(405, f"{verb} takes POST with a JSON body (kube-scheduler's {_ARGS[verb]})")
        response.headers["Allow"] = "POST"
        return response

    return bp


def probes_blueprint(probes: Probes) -> Blueprint:
    """``GET /healthz`` (alive; reports cache ages and metric sources), ``/readyz`` (ready to
    answer), ``/version``."""
    bp = Blueprint("probes", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        status, body = probes.healthz()
        return _json(body, status)

    @bp.get("/readyz")
    def readyz() -> Response:
        status, body = probes.readyz()
        return _json(body, status)

    @bp.get("/version")
    def version() -> Response:
        # loadedAt and lastReload of this worker (each reloads on its own; see README)
        report = {"version": __version__, "worker": os.getpid(), **(reload_report() or {})}
        return _json(encode_json({**report, "policy": policy_report(_service().policy)}))

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
    response = json_error(status, message)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        # Only the verbs take POST, and they take nothing else: the rule answering wrong
        # methods of a verb is not a method the verb allows.
        allowed = ["POST"] if "POST" in exc.valid_methods else sorted(exc.valid_methods)
        response.headers["Allow"] = ", ".join(allowed)
    return response


def handle_unexpected(exc: Exception) -> Response:
    """A bug, not bad input: log the traceback, answer a JSON 500 (the worker lives on)."""
    log.exception("internal error on %s %s", request.method, request.path)
    return json_error(500, f"internal error: {type(exc).__name__}; see the extender's log")
