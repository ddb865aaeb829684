"""Every error the HTTP layer returns is JSON: ``{"error": "<message naming the problem>"}``."""

from __future__ import annotations

from flask import Response

from extender.codec.common import encode_json


def json_error(status: int, message: str) -> Response:
    return Response(encode_json({"error": message}), status=status, mimetype="application/json")
