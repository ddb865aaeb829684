"""Running the app under gunicorn, configured from :mod:`extender.gunicorn_conf` and :class:`Settings`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from extender import gunicorn_conf
from extender.engine import Policy
from extender.policy import PolicyError, load_policy_text
from extender.policy.reload import last_good
from extender.settings import Settings
from extender.web import create_app
from extender.web.reloading import PolicyReloader

log = logging.getLogger("extender")


class PolicyReloadingArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, except that SIGHUP makes every worker re-read the policy in place.

    gunicorn's own SIGHUP replaces every worker, and with them their node caches (a relist
    each) and kube-scheduler's keep-alive connections; a policy change needs neither. What
    else SIGHUP reloaded (gunicorn's settings) comes from flags and the environment, which a
    running process cannot be given anew anyway.
    """

    def handle_hup(self) -> None:
        self.log.info("Hang up: every worker re-reads the policy (workers are kept)")
        self.kill_workers(signal.SIGHUP)


class ExtenderServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose settings come from our config module and Settings."""

    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        #: the policy the CLI validated before forking: what a worker (re)started while the
        #: file is broken serves, rather than fail to boot (which stops gunicorn altogether)
        self.startup_policy = policy
        #: this worker's policy watch, once its app is loaded (extender.web.reloading)
        self.reloader: PolicyReloader | None = None
        #: a SIGHUP came before the app was loaded: wake the watch once it is
        self._hung_up = False
        #: set in a worker when it is told to stop (SIGTERM): /readyz answers 503 from then on
        self.draining = threading.Event()
        super().__init__()

    def gunicorn_settings(self) -> dict[str, Any]:
        values = dict(gunicorn_conf.SETTINGS)
        values.update(
            bind=[f"{self.settings.host}:{self.settings.port}"]
            + ([f"{self.settings.probe_host or self.settings.host}:{self.settings.probe_port}"] if self.settings.probe_port else [])
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
        fell_back = False
        try:
            app = create_app(self.settings, draining=self.draining.is_set)
        except PolicyError as exc:
            if self.startup_policy is None:
                raise
            policy, which = self._fallback_policy(self.startup_policy)
            log.error(
                "worker %d serves the %s policy (digest %s): the policy file is invalid now (%d problem(s))",
                os.getpid(), which, policy.digest, len(exc.problems),
            )
            app = create_app(self.settings, policy=policy, draining=self.draining.is_set)
            fell_back = True
        self.reloader = app.extensions.get("extender.reloader")
        if self.reloader is not None:  # policy hot reload: this worker's watch (woken by SIGHUP)
            if fell_back:
                self.reloader.check("file")  # the invalid file: reported (and counted) as a refused reload, once
            self.reloader.start()
            if self._hung_up:  # the file may have changed after this worker read it
                self.reloader.wake()
        return app

    def _fallback_policy(self, startup: Policy) -> tuple[Policy, str]:
        """What a worker started while the file is broken serves: the policy the last reload
        applied (the other workers serve it), else the one the server started with."""
        text = last_good(self.settings.runtime_dir)
        if text is not None:
            try:
                return load_policy_text(text, self.settings.policy or startup.source), "last reloaded"
            except PolicyError:
                pass
        return startup, "start-up"

    def hangup(self) -> None:
        """SIGHUP in a worker (its signal handler, in the main thread): re-read the policy now.
        Only sets flags and an event, so it is safe wherever the main thread was."""
        self._hung_up = True
        if self.reloader is not None:
            self.reloader.wake()

    def run(self) -> None:
        """As BaseApplication.run, with the master that forwards SIGHUP."""
        try:
            PolicyReloadingArbiter(self).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)
