"""Binding pods to nodes through the API server, idempotently and within a deadline.

kube-scheduler retries a bind whose reply it did not get (its httpTimeout fired after the
API server had bound the pod). The retried POST then gets 409 "already assigned": if the pod
(same UID) sits on the node we were asked for, that is the earlier bind succeeding, not a
failure. The Binding carries the pod UID, so a pod deleted and recreated under the same name
is never bound by a stale request.
"""

from __future__ import annotations

import logging
import time

from extender.codec import kube_api
from extender.kube.client import KubeClient
from extender.kube.errors import ApiError, Conflict, NotFound
from extender.kube.placements import RecentPlacements

log = logging.getLogger("extender.kube")


class BindError(Exception):
    """The bind failed; the message is what kube-scheduler will report."""


class KubeBinder:
    """Creates ``pods/binding`` subresources."""

    def __init__(self, client: KubeClient, *, timeout: float = 3.0, placements: RecentPlacements | None = None) -> None:
        self.client = client
        self.timeout = timeout
        self.placements = placements

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """Bind or raise :class:`BindError`; returns within ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        pod = f"{namespace}/{name}"
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
            self._resolve_conflict(pod, namespace, name, uid, node, exc, deadline)
        except ApiError as exc:
            raise BindError(f"binding pod {pod} to {node} failed: {exc.message}") from None
        if self.placements is not None:
            self.placements.record(uid, namespace, name, node)

    def _resolve_conflict(
        self, pod: str, namespace: str, name: str, uid: str, node: str, exc: Conflict, deadline: float
    ) -> None:
        if "Precondition failed" in exc.message:
            raise BindError(f"pod {pod} was replaced (UID {uid} no longer exists); not binding the new pod") from None
        try:
            response = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}", deadline=deadline)
        except ApiError as lookup:
            raise BindError(f"binding pod {pod} to {node}: {exc.message} (and reading it back failed: {lookup})") from None
        current_uid, current_node = kube_api.decode_pod_placement(response.content)
        if current_uid == uid and current_node == node:
            log.info("bind pod=%s node=%s: already bound there (a retried bind)", pod, node)
            return
        if current_uid != uid:
            raise BindError(f"pod {pod} was replaced (UID {uid} no longer exists); not binding the new pod")
        raise BindError(f"pod {pod} is already bound to node {current_node}, not {node}")
