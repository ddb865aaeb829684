"""A real ``extender serve`` (the CLI, gunicorn, its workers' caches) against a fake API
server, configured by a kubeconfig as an operator would run it outside a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.live_server import Server, running_server


def write_kubeconfig(path: Path, server: str, user: dict[str, Any] | None = None, **cluster: Any) -> Path:
    """A one-context kubeconfig for ``server`` (``user`` defaults to the fake's token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "extender", "user": user if user is not None else {"token": "test-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "extender"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))
    return path


@contextmanager
def live_extender(tmp_path: Path, kubeconfig: Path, policy: str, *args: str) -> Iterator[Server]:
    """``extender serve --node-cache --kubeconfig ... --workers 1`` on a free port, once it
    answers /healthz (ready or not: readiness is what these tests look at)."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    flags = ("--workers", "1", "--policy", str(policy_file), "--node-cache", "--kubeconfig", str(kubeconfig), *args)
    with running_server(tmp_path, *flags, ready=lambda s: s.get("/healthz").status_code == 200, timeout=30) as server:
        yield server
