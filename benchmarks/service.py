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
def serve(policy: Path, *args: str, workers: int = 2, threads: int = 4, ready_timeout: float = 120) -> Iterator[RunningService]:
    """Run ``extender serve`` until the context exits; wait for /readyz."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXTENDER_", "KUBERNETES_"))}
    env["EXTENDER_LOG_LEVEL"] = "warning"  # a log line per request would measure the terminal
    process = subprocess.Popen(
        [sys.executable, "-m", "extender", "serve", "--port", str(port), "--policy", str(policy),
         "--workers", str(workers), "--threads", str(threads), *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    running = RunningService(process, port)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"extender serve exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{running.url}/readyz", timeout=2) as response:
                    if response.status == 200 and len(running.worker_pids()) == workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("extender serve did not become ready")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
