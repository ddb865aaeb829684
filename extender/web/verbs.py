"""The verbs as bytes in, bytes out: one translation between HTTP and the service.

``POST {prefix}/{filter,prioritize,preempt,bind}`` is answered here, whoever carries the
request: the Flask route (:func:`extender.web.routes.verbs_blueprint`, for every server and
the test client) and the serving worker's fast path (:mod:`extender.serving.fastpath`), which
hands a request it has framed and checked straight to :meth:`VerbEndpoint.answer` without
building a WSGI environ, a Flask request context or a Response. Both give the same status and
body for the same request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from werkzeug.http import parse_options_header

from extender.codec.common import Body, WireError, encode_json
from extender.decisions.log import encode_record
from extender.service import ExplainVerb, ExtenderService
from extender.telemetry import metrics

log = logging.getLogger("extender.http")

VERBS = ("filter", "prioritize", "preempt", "bind")
#: what ``POST {prefix}/explain?verb=`` takes (not a kube-scheduler verb: never on the fast path)
EXPLAIN_VERBS = ("filter", "prioritize", "both")
JSON = "application/json"
#: verbs that only compute (no API calls): the serving worker may answer them in its event loop
PURE_VERBS = frozenset({"filter", "prioritize"})


def error_body(message: str) -> bytes:
    """Every error the HTTP layer returns: ``{"error": "<message naming the problem>"}``."""
    return encode_json({"error": message})


def unsupported_content_type(value: str | None) -> str | None:
    """Why a request's Content-Type is refused, or None: JSON (UTF-8, the only charset JSON
    has) or none at all (curl -d --data-binary without -H, hand-written clients) is fine."""
    if not value or value == JSON:  # kube-scheduler sends exactly "application/json"
        return None
    mimetype, options = parse_options_header(value)
    charset = options.get("charset", "utf-8").lower()
    if mimetype.lower() == JSON and charset in ("utf-8", "utf8"):
        return None
    shown = value if len(value) <= 100 else f"{value[:100]}..."
    return f"unsupported Content-Type {shown!r}: send {JSON} (UTF-8)"


class VerbEndpoint:
    """The verbs under one URL prefix, answered by the app's current service.

    ``extensions`` is the Flask app's ``extensions`` mapping: the service is looked up in it
    on every call, so a service swapped there (a policy reload) answers the next request.
    """

    def __init__(self, extensions: Mapping[str, Any], url_prefix: str, max_body_bytes: int) -> None:
        self._extensions = extensions
        self.url_prefix = url_prefix
        self.max_body_bytes = max_body_bytes
        #: the exact request paths of the verbs, e.g. "/scheduler/filter" -> "filter"
        self.paths: dict[str, str] = {f"{url_prefix}/{verb}": verb for verb in VERBS}

    @property
    def service(self) -> ExtenderService:
        service: ExtenderService = self._extensions["extender.service"]
        return service

    def answer(self, verb: str, content_type: str | None, body: Body) -> tuple[int, bytes]:
        """Status and JSON body for ``POST`` of ``body`` to ``verb`` (one of :data:`VERBS`).

        ``body`` is within ``max_body_bytes``: the callers refuse a larger one from its head
        (the worker's framing, :func:`~extender.web.body.read_body`). Bad input is a 4xx
        naming the problem; a bug is a logged 500, never an exception. Each call is counted
        in the request metrics (:func:`extender.telemetry.metrics.end_call`).
        """
        started = time.perf_counter()
        metrics.begin_call()
        status, reply = self._answer(verb, content_type, body)
        outcome = metrics.OK if status == 200 else metrics.INTERNAL_ERROR if status >= 500 else metrics.BAD_REQUEST
        metrics.end_call(verb, outcome, time.perf_counter() - started, len(body))
        return status, reply

    def _answer(self, verb: str, content_type: str | None, body: Body) -> tuple[int, bytes]:
        unsupported = unsupported_content_type(content_type)
        if unsupported:
            return 415, error_body(f"{verb}: {unsupported}")
        return self._guarded(verb, getattr(self.service, verb), body)

    def explain(self, verb: str, body: Body) -> tuple[int, bytes]:
        """Status and JSON body for ``POST {prefix}/explain?verb=`` (its Content-Type checked
        by the route): the decision record of filter or prioritize on an ``ExtenderArgs``
        body, with its table of every node (or both verbs, see :meth:`ExtenderService.explain`);
        bad input is a 4xx naming it."""
        if verb not in EXPLAIN_VERBS:
            return 400, error_body(f"explain: verb {verb!r}: must be one of {', '.join(EXPLAIN_VERBS)}")
        which = cast(ExplainVerb, verb)
        return self._guarded("explain", lambda request: encode_record(self.service.explain(request, which)), body)

    def _guarded(self, name: str, compute: Callable[[Body], bytes], body: Body) -> tuple[int, bytes]:
        """200 with what ``compute`` answers; bad input a 400 naming it; a bug a logged 500."""
        try:
            return 200, compute(body)
        except WireError as exc:
            log.info("rejected %s request: %s", name, exc)
            return 400, error_body(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug, not bad input: answered, never fatal
            log.exception("internal error on POST %s/%s", self.url_prefix, name)
            return 500, error_body(f"internal error: {type(exc).__name__}; see the extender's log")
