"""Start the extender exactly as deployed (``extender serve``: gunicorn with the shipped
config) on a loopback port, and read its workers' memory from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def memory_mib(self) -> dict[int, tuple[float, float]]:
        """Per worker: (current RSS, peak RSS) in MiB."""
        result = {}
        for pid in self.worker_pids():
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
            )
            result[pid] = (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)
        return result


@contextmanager
def running(
    command: list[str], port: int, *, env: dict[str, str] | None = None, workers: int | None = None,
    ready_timeout: float = 120, cwd: Path = ROOT,
) -> Iterator[RunningService]:
    """Run ``command`` (a server on ``port``) in ``cwd`` until the context exits; wait for
    /readyz (and for ``workers`` worker processes, if given). The environment loses EXTENDER_*
    and KUBERNETES_* variables, gains ``env``, and logs at warning: a log line per request
    would measure the terminal. To serve another tree, pass it as ``cwd`` (see
    :func:`tree_env`): ``python -m`` puts the cwd before ``PYTHONPATH`` on sys.path, so
    ``PYTHONPATH`` alone would still import this checkout's ``extender``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("EXTENDER_", "KUBERNETES_"))}
    environment.update(EXTENDER_LOG_LEVEL="warning", **(env or {}))
    process = subprocess.Popen(command, env=environment, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = RunningService(process, port)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command[:4])} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{running.url}/readyz", timeout=2) as response:
                    if response.status == 200 and (workers is None or len(running.worker_pids()) == workers):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def serve(policy: Path, *args: str, workers: int = 2, threads: int = 4, ready_timeout: float = 120,
          tree: Path = ROOT) -> Iterator[RunningService]:
    """Run ``extender serve`` (``tree``'s, default this checkout's) until the context exits;
    wait for /readyz."""
    port = free_port()
    command = [sys.executable, "-m", "extender", "serve", "--port", str(port), "--policy", str(policy),
               "--workers", str(workers), "--threads", str(threads), *args]
    env = tree_env(tree) if tree != ROOT else None
    with running(command, port, workers=workers, ready_timeout=ready_timeout, cwd=tree, env=env) as service:
        yield service


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that makes this interpreter import ``tree``'s code (with ``cwd=tree``)."""
    return {"PYTHONPATH": str(tree)}


def imported_extender(tree: Path) -> Path:
    """Where this interpreter imports ``extender`` from when run as a server of ``tree`` is
    (cwd ``tree``, :func:`tree_env`); raises unless it is inside ``tree``."""
    environment = {**os.environ, **tree_env(tree)}
    probe = subprocess.run([sys.executable, "-c", "import extender; print(extender.__file__)"], cwd=tree,
                           env=environment, capture_output=True, text=True, check=True)
    where = Path(probe.stdout.strip()).resolve()
    if not where.is_relative_to(tree.resolve()):
        raise RuntimeError(f"serving {tree} would import extender from {where}")
    return where


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev`` of this repository checked out into a temporary detached git worktree, removed
    (and pruned) when the context exits, on error too."""
    with tempfile.TemporaryDirectory(prefix="extender-before-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
