"""The serving process's runtime directory: per-worker files the workers share.

``extender serve`` prepares it in the gunicorn master, before the fork and before anything
imports prometheus_client (which reads ``PROMETHEUS_MULTIPROC_DIR`` once, at import):
``<dir>/metrics`` holds the workers' metric files and is emptied at start, as values left
by an earlier run would be summed into this one; ``<dir>/decisions`` holds the status page's
ring files (:mod:`extender.status.store`) and ``<dir>/policy`` the last policy a reload
applied (:mod:`extender.policy.reload`): both are emptied too. Without ``--runtime-dir`` the directory is a
fresh private one, in memory (/dev/shm) when there is one, removed at exit.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("extender")

#: the subdirectory of the runtime directory the workers' metric files go to
METRICS_SUBDIR = "metrics"
#: the status page's ring files (:mod:`extender.status.store`)
DECISIONS_SUBDIR = "decisions"
#: the last policy a reload applied (:mod:`extender.policy.reload`)
POLICY_SUBDIR = "policy"


@dataclass(frozen=True)
class RuntimeDir:
    """A prepared runtime directory; ``owned``: made here, so removed by :meth:`remove`."""

    path: Path
    owned: bool

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_SUBDIR

    def remove(self) -> None:
        """Remove the directory if this process made it (a given one is left in place)."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare(configured: str | None) -> RuntimeDir:
    """Make (or reuse ``configured``) the runtime directory, empty its metrics and decisions
    (the status page's ring files, :mod:`extender.status.store`) subdirectories and
    point ``PROMETHEUS_MULTIPROC_DIR`` at it. Raises OSError if it cannot be made."""
    if configured:
        runtime = RuntimeDir(Path(configured).resolve(), owned=False)
        runtime.path.mkdir(parents=True, exist_ok=True)
    else:
        parent = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        runtime = RuntimeDir(Path(tempfile.mkdtemp(prefix="extender-", dir=parent)), owned=True)  # mode 0700
    metrics = runtime.metrics
    for subdirectory in (metrics, runtime.path / DECISIONS_SUBDIR, runtime.path / POLICY_SUBDIR):  # not an earlier run's
        if subdirectory.exists():
            shutil.rmtree(subdirectory)
        subdirectory.mkdir(mode=0o700)
    if "prometheus_client" in sys.modules:  # too late for this process; the workers re-import nothing
        log.warning("prometheus_client was imported before the runtime directory was set: metrics may be per worker")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    return runtime
