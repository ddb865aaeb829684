"""A real ``extender serve`` (the CLI, gunicorn, its workers' caches) against a fake API
server, configured by a kubeconfig as an operator would run it outside a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.test_server import free_port


@dataclass
class Live:
    """A running server; its stdout and stderr go to ``log``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10)

    def post(self, verb: str, body: bytes) -> requests.Response:
        return requests.post(f"{self.url}/scheduler/{verb}", data=body, timeout=10)

    def ready(self) -> bool:
        return self.get("/readyz").status_code == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace")


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
def live_extender(tmp_path: Path, kubeconfig: Path, policy: str, *args: str) -> Iterator[Live]:
    """``extender serve --node-cache --kubeconfig ... --workers 1`` on a free port, once it
    answers /healthz (ready or not: readiness is what these tests look at)."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    log = tmp_path / "extender.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "EXTENDER_"))}
    command = [
        sys.executable, "-m", "extender", "serve", "--port", str(port), "--workers", "1",
        "--policy", str(policy_file), "--node-cache", "--kubeconfig", str(kubeconfig), *args,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    live = Live(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"extender exited with {process.returncode}:\n{live.output()}")
            try:
                if live.get("/healthz").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"extender did not start:\n{live.output()}")
            time.sleep(0.1)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
