"""Every error the HTTP layer returns is JSON: ``{"error": "<message naming the problem>"}``."""

from __future__ import annotations

from flask import Response

from extender.web.verbs import error_body


def json_error(status: int, message: str) -> Response:
    return Response(error_body(message), status=status, mimetype="application/json")
