"""Start the extender exactly as deployed (``extender serve``: gunicorn with the shipped
config) on a loopback port, and read its workers' memory from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
    ready_timeout: float = 120,
) -> Iterator[RunningService]:
    """Run ``command`` (a server on ``port``) until the context exits; wait for /readyz (and
    for ``workers`` worker processes, if given). The environment loses EXTENDER_* and
    KUBERNETES_* variables, gains ``env``, and logs at warning: a log line per request would
    measure the terminal."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("EXTENDER_", "KUBERNETES_"))}
    environment.update(EXTENDER_LOG_LEVEL="warning", **(env or {}))
    process = subprocess.Popen(command, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
def serve(policy: Path, *args: str, workers: int = 2, threads: int = 4, ready_timeout: float = 120) -> Iterator[RunningService]:
    """Run ``extender serve`` until the context exits; wait for /readyz."""
    port = free_port()
    command = [sys.executable, "-m", "extender", "serve", "--port", str(port), "--policy", str(policy),
               "--workers", str(workers), "--threads", str(threads), *args]
    with running(command, port, workers=workers, ready_timeout=ready_timeout) as service:
        yield service
