"""gunicorn settings for the extender, in one place (also usable as ``gunicorn -c python:extender.gunicorn_conf``).

The values that matter for correctness were measured (python-stack.md §5.4, §7.3):
- a threaded worker keeps HTTP/1.1 connections alive, as kube-scheduler's Go client expects;
  sync closes every connection (a TCP + TLS handshake per call). Ours is gthread with all
  reading done in the event loop, so slow clients cannot take the threads.
- keepalive above Go's 90 s IdleConnTimeout: with gunicorn's default of 2 s, 3 of 15 calls
  spaced 2 s apart failed with "connection reset by peer" as the server closed the idle
  connection under the client, and each such failure fails a pod's scheduling attempt.
- No max_requests: recycling workers would drop keep-alive connections for nothing.
"""

from __future__ import annotations

import ctypes
import gc
import os
from typing import Any

# gthread's thread pool, keep-alive and shutdown, with every socket read in its event loop:
# a thread only ever takes a request that has arrived whole (see extender/serving/worker.py).
worker_class = "extender.serving.worker.BufferingWorker"
workers = 2
threads = 4
# Per worker; the oldest idle keep-alive connection is closed to make room for a new one.
worker_connections = 1000
keepalive = 100
# gthread's timeout is a heartbeat watchdog, not a request timeout (kube-scheduler's own
# httpTimeout, 5 s by default, bounds each call).
timeout = 30
# Below Kubernetes' default terminationGracePeriodSeconds (30) minus a preStop sleep (5).
graceful_timeout = 20
max_requests = 0
# Each worker builds its app (and its node cache's watch thread) after the fork; threads
# started in the master would not survive it. The CLI validates the policy before forking.
preload_app = False
# The heartbeat file's fchmod must not hit a slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn >= 25.1 would create $HOME/.gunicorn/gunicorn.ctl; the image's root is read-only.
control_socket_disable = True
limit_request_line = 4094
limit_request_fields = 100
# A decision log line per request is written by the app; per-request access lines are noise.
accesslog = None
errorlog = "-"
proc_name = "extender"



def _bound_malloc() -> None:
    """Keep glibc from holding on to request-sized memory (a no-op elsewhere).

    glibc raises its mmap threshold to the size of each large block freed, so after the
    first 7 MB body later ones come from a heap arena that is never given back, one arena
    per request thread: the busy worker's RSS stepped from 56 to 72 MiB after ~1100
    requests of 1000 nodes, then stayed there. A fixed 1 MiB threshold maps large blocks
    and unmaps them on free.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD (fixing it also stops the adjusting)
    except (OSError, AttributeError):
        pass


def post_worker_init(worker: Any) -> None:
    """Keep the cyclic GC off the request path.

    Everything loaded so far (the app, the policy, imported modules) is frozen out of GC
    scans, and generation 0 collects every 10000 allocations instead of 700: a full-node
    request allocates tens of thousands of objects. The node cache freezes itself again
    after each list. Measured in process on 5000 cached nodes: p99 4.9 -> 2.0 ms, worst
    request 35 -> 3 ms (full collections scanning the cache).
    """
    _bound_malloc()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live gauges from /metrics (its counters stay summed in)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


SETTINGS = {
    name: value
    for name, value in dict(globals()).items()
    if not name.startswith("_") and name not in ("annotations", "ctypes", "os", "gc", "Any", "SETTINGS") and value is not None
}
