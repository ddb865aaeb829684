"""Binding pods to nodes through the API server, idempotently and within a deadline.

kube-scheduler retries a bind whose reply it did not get (its httpTimeout fired after the
API server had bound the pod). The retried POST then gets 409 "already assigned": if the pod
(same UID) sits on the node we were asked for, that is the earlier bind succeeding, not a
failure. The Binding carries the pod UID, so a pod deleted and recreated under the same name
is never bound by a stale request.

Every failure is a :class:`BindError` whose message is one short sentence naming the pod, the
node and what happened. kube-scheduler treats a non-empty ``Error`` as a failed bind: it
forgets the pod, records the message in the pod's events and schedules it again.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from extender.codec import kube_api
from extender.kube.client import KubeClient
from extender.kube.errors import (
    ApiError,
    ApiTimeout,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
)

log = logging.getLogger("extender.kube")

#: the API server's messages are usually one line; a proxy's error page is not
_DETAIL_CHARS = 200


class BindRecorder(Protocol):
    """Told of each successful bind (``BindHistory``, ``RecentPlacements``)."""

    def record(self, uid: str, namespace: str, name: str, node: str) -> None: ...


class BindError(Exception):
    """The bind failed; the message is what kube-scheduler will report."""


class KubeBinder:
    """Creates ``pods/binding`` subresources."""

    def __init__(self, client: KubeClient, *, timeout: float = 3.0, placements: BindRecorder | None = None) -> None:
        self.client = client
        self.timeout = timeout
        self.placements = placements

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """Bind or raise :class:`BindError`; returns within ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        pod = f"{namespace}/{name}"
        where = f"binding pod {pod} to node {node}"
        try:
            self.client.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
                body=kube_api.encode_binding(namespace, name, uid, node),
                retry=True,  # safe: a repeated bind comes back as a 409 we resolve below
                deadline=deadline,
            )
        except NotFound:
            raise BindError(f"pod {pod} not found: it was deleted before it could be bound") from None
        except Conflict as exc:
            self._resolve_conflict(where, pod, namespace, name, uid, node, exc, deadline)
        except ApiError as exc:
            raise BindError(f"{where}: {self._explain(exc)}") from None
        if self.placements is not None:
            self.placements.record(uid, namespace, name, node)

    def _explain(self, exc: ApiError) -> str:
        """What went wrong, for kube-scheduler's event and the log (no method, path or repr)."""
        detail = _short(exc.detail)
        if isinstance(exc, ApiTimeout):
            return f"no answer from the API server within the bind timeout ({self.timeout:g}s); it may still bind"
        if isinstance(exc, TransportError):
            return f"the API server is unreachable ({detail})"
        if isinstance(exc, Unauthorized):
            return "the API server rejected the extender's credentials (401 Unauthorized)"
        if isinstance(exc, Forbidden):
            return f"forbidden (403), the extender needs create on pods/binding: {detail}"
        if isinstance(exc, TooManyRequests):
            after = f", retry after {exc.retry_after:g}s" if exc.retry_after else ""
            return f"throttled by the API server (429 Too Many Requests{after})"
        if exc.status == 422:
            return f"the API server rejected the binding as invalid (422): {detail}"
        if isinstance(exc, ServerError):
            return f"the API server failed ({exc.status}): {detail}"
        return f"the API server answered {exc.status}: {detail}"

    def _resolve_conflict(
        self, where: str, pod: str, namespace: str, name: str, uid: str, node: str, exc: Conflict, deadline: float
    ) -> None:
        if "Precondition failed" in exc.message:
            raise BindError(f"pod {pod} was replaced (UID {uid} no longer exists); not binding the new pod") from None
        try:
            response = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}", deadline=deadline)
        except NotFound:
            raise BindError(f"pod {pod} not found: it was deleted before it could be bound") from None
        except ApiError as lookup:
            raise BindError(
                f"{where}: {_short(exc.detail)} (and reading the pod back failed: {self._explain(lookup)})"
            ) from None
        current_uid, current_node = kube_api.decode_pod_placement(response.content)
        if current_uid == uid and current_node == node:
            log.info("bind pod=%s node=%s: already bound there (a retried bind)", pod, node)
            return
        if current_uid != uid:
            raise BindError(f"pod {pod} was replaced (UID {uid} no longer exists); not binding the new pod")
        if not current_node:  # not bound, yet the server refused: e.g. the pod is being deleted
            raise BindError(f"{where}: {_short(exc.detail)}")
        raise BindError(f"pod {pod} is already bound to node {current_node}, not {node}")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"
