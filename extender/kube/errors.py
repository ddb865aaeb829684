"""Errors from the Kubernetes API, one class per answer a caller handles differently."""

from __future__ import annotations


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        #: the whole story: method, path, status and the server's message
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        #: what went wrong without the method and path: the server's own message, or why the
        #: connection failed ("connection refused"); short enough for a reply to kube-scheduler
        self.detail = message if detail is None else detail


class TransportError(ApiError):
    """No answer: connection refused or reset, TLS failure, or a timeout."""


class ApiTimeout(TransportError):
    """No answer in time: a connect or read timeout, or the caller's deadline passed.

    The request may still have reached the server (a bind may have happened)."""


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


def error_for(
    status: int, message: str, reason: str = "", retry_after: float | None = None, detail: str | None = None
) -> ApiError:
    """The ApiError subclass for an HTTP status."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, status=status, reason=reason, retry_after=retry_after, detail=detail)


#: worth retrying (with backoff) for an idempotent call
RETRYABLE = (TransportError, TooManyRequests, ServerError)
