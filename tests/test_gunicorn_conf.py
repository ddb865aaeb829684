"""The shipped gunicorn settings: what correctness and the measurements depend on."""

from __future__ import annotations

import gc

from extender import gunicorn_conf
from extender.server import ExtenderServer
from extender.settings import Settings


def test_keep_alive_outlives_the_go_clients_idle_timeout() -> None:
    server = ExtenderServer(Settings(port=18080, workers=3, threads=2, max_connections=50))
    assert server.cfg.worker_class_str == "extender.serving.worker.BufferingWorker"
    assert server.cfg.worker_connections == 50
    assert server.cfg.keepalive > 90, "Go's transport keeps idle connections 90 s"
    assert server.cfg.max_requests == 0, "no worker recycling"
    assert server.cfg.preload_app is False, "caches start their threads after the fork"
    assert (server.cfg.workers, server.cfg.threads, server.cfg.bind) == (3, 2, ["127.0.0.1:18080"])
    assert server.cfg.graceful_timeout + 5 < 30, "graceful shutdown fits the pod's grace period after a preStop sleep"


def test_worker_start_freezes_the_heap_and_raises_the_gc_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        gunicorn_conf.post_worker_init(None)
        assert gc.get_threshold() == (10_000, 20, 100)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
