"""Errors from the Kubernetes API, one class per answer a caller handles differently."""

from __future__ import annotations


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    status: int = 0

    def __init__(self, message: str, *, status: int | None = None, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after


class TransportError(ApiError):
    """No answer: connection refused or reset, TLS failure, or a timeout."""


class Unauthorized(ApiError):
    """401: the token or client certificate is missing, expired or invalid."""

    status = 401


class Forbidden(ApiError):
    """403: authenticated, but RBAC does not allow this (see deploy/ for the rules needed)."""

    status = 403


class NotFound(ApiError):
    """404."""

    status = 404


class Conflict(ApiError):
    """409: e.g. a pod already bound, or a UID precondition that failed."""

    status = 409


class Gone(ApiError):
    """410: the resourceVersion or continue token is too old; start a fresh list."""

    status = 410


class TooManyRequests(ApiError):
    """429: API priority and fairness throttled us; honour Retry-After."""

    status = 429


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    429: TooManyRequests,
}


def error_for(status: int, message: str, reason: str = "", retry_after: float | None = None) -> ApiError:
    """The ApiError subclass for an HTTP status."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, status=status, reason=reason, retry_after=retry_after)


#: worth retrying (with backoff) for an idempotent call
RETRYABLE = (TransportError, TooManyRequests, ServerError)
