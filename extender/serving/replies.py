"""The replies the worker writes itself (refusals, parse errors): JSON, like the app's."""

from __future__ import annotations

import json
from http import HTTPStatus

from gunicorn.http import errors as parse_errors


def json_reply(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection: ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    reason = HTTPStatus(status).phrase
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def parse_error_status(exc: BaseException) -> int | None:
    """The status for an error gunicorn's parser raised, or None if it is not the client's."""
    if isinstance(exc, (parse_errors.InvalidResponseHeader, parse_errors.InvalidResponseHeaderName)):
        return None  # a header the application tried to send
    if isinstance(exc, parse_errors.LimitRequestLine):
        return 414
    if isinstance(exc, parse_errors.LimitRequestHeaders):
        return 431
    if isinstance(exc, parse_errors.UnsupportedTransferCoding):
        return 501
    if isinstance(exc, parse_errors.ExpectationFailed):
        return 417
    if isinstance(exc, parse_errors.ConfigurationProblem):
        return None
    if isinstance(exc, (parse_errors.ParseException, parse_errors.NoMoreData)):
        return 400
    return None
