"""Benchmark-only: ``extender serve`` with a yappi CPU profile in each worker, switched on and
off by a signal, so a profile covers exactly the calls the benchmark makes.

``python -m benchmarks.profiled_serve serve ...`` (the arguments of ``extender serve``), with
``BENCH_PROFILE_DIR`` set. The shipped code is untouched: this wraps the shipped gunicorn
``post_worker_init`` (which still runs first) to install a ``SIGRTMIN`` handler in the worker.
The first signal clears and starts yappi (CPU clock, every thread: the event loop and the
request threads); the next stops it and saves ``<dir>/<pid>-<n>.pstat`` (pstats format)
and beside it ``<pid>-<n>.threads.json``, each thread's total CPU seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import yappi  # type: ignore[import-untyped]

from extender import cli, gunicorn_conf

TOGGLE = signal.SIGRTMIN
_shipped_post_worker_init = gunicorn_conf.post_worker_init
_saved = 0


def _toggle(signum: int, frame: FrameType | None) -> None:
    global _saved
    if not yappi.is_running():
        yappi.clear_stats()
        yappi.set_clock_type("cpu")
        yappi.start(builtins=False, profile_threads=True)
        return
    yappi.stop()
    _saved += 1
    out = Path(os.environ["BENCH_PROFILE_DIR"]) / f"{os.getpid()}-{_saved}.pstat"
    partial = out.with_suffix(".part")
    yappi.get_func_stats().save(str(partial), type="pstat")
    threads = {str(t.id): t.ttot for t in yappi.get_thread_stats()}
    out.with_suffix(".threads.json").write_text(json.dumps(threads))
    partial.rename(out)  # whole when it appears


def post_worker_init(worker: Any) -> None:
    """The shipped hook, then the profile toggle."""
    _shipped_post_worker_init(worker)
    signal.signal(TOGGLE, _toggle)


def main(argv: list[str]) -> int:
    gunicorn_conf.SETTINGS["post_worker_init"] = post_worker_init
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
