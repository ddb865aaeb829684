"""Running the app under gunicorn, configured from :mod:`extender.gunicorn_conf` and :class:`Settings`."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from extender import gunicorn_conf
from extender.settings import Settings
from extender.web import create_app


class ExtenderServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose settings come from our config module and Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: set in a worker when it is told to stop (SIGTERM): /readyz answers 503 from then on
        self.draining = threading.Event()
        super().__init__()

    def gunicorn_settings(self) -> dict[str, Any]:
        values = dict(gunicorn_conf.SETTINGS)
        values.update(
            bind=[f"{self.settings.host}:{self.settings.port}"]
            + ([f"{self.settings.host}:{self.settings.probe_port}"] if self.settings.probe_port else [])
            # the status page's own listener (README "Status page")
            + ([f"{self.settings.admin_host}:{self.settings.admin_port}"] if self.settings.admin_port else []),
            workers=self.settings.served_workers,
            threads=self.settings.threads,
            worker_connections=self.settings.max_connections,
            loglevel=self.settings.log_level.lower(),
        )
        return values

    def load_config(self) -> None:
        for key, value in self.gunicorn_settings().items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        # Called in each worker after the fork (preload_app is off): the caches' watch
        # threads and connections must belong to the process that serves.
        return create_app(self.settings, draining=self.draining.is_set)
