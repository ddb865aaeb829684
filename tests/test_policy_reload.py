"""Policy hot reload in one worker: the file watch (ConfigMap symlink swaps), validation
first (a broken policy never replaces a good one), the swap of the service on the running
state, what /version reports, and what cannot be reloaded without a restart.

The reloader's :meth:`check` is called directly here (what its thread does every poll, or
on SIGHUP); tests/test_policy_reload_live.py runs it in real gunicorn workers under load.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from extender.kube.stores import NodeStore
from extender.load.state import LoadState
from extender.policy import PolicyError, load_policy_text
from extender.policy.loader import text_digest
from extender.policy.reload import PolicyFileWatch, ReloadAttempt
from extender.server import ExtenderServer
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web import create_app
from extender.web.reloading import PolicyReloader
from tests.test_openapi import problems, response_ref

#: the pod of these requests is in namespace "default"
REQUEST = json.dumps(
    {"Pod": {"metadata": {"name": "p", "namespace": "default", "uid": "u-1"}}, "Nodes": None, "NodeNames": ["n-1", "n-2"]}
).encode()
#: in scope: without a node cache, every name is unknown and rejected
STRICT = "version: 1\nscope:\n  namespaces:\n    include: [default]\n"
#: "default" out of scope: every name passes untouched
LENIENT = "version: 1\nscope:\n  namespaces:\n    exclude: [default]\n"
BROKEN = "version: 1\npredicates:\n- type: no-such-rule\n- type: node-condition\n  params: {conditions: 7}\n"
ANNOTATIONS = """version: 1
sources:
  crane: {type: node-annotations, refreshInterval: 1h, maxAge: 2h}
predicates:
- type: load-threshold
  params:
    source: crane
    thresholds: [{metric: %s, max: 80}]
"""


class ConfigMapVolume:
    """A directory laid out as kubelet lays out a ConfigMap volume: ``policy.yaml ->
    ..data/policy.yaml``, ``..data -> ..<timestamp>``; an update writes a new timestamped
    directory and renames a new ``..data`` link over the old one (atomically)."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self.generation = 0
        self._write(text)
        (root / "policy.yaml").symlink_to("..data/policy.yaml")

    @property
    def path(self) -> str:
        return str(self.root / "policy.yaml")

    def _write(self, text: str) -> None:
        self.generation += 1
        folder = self.root / f"..2026_12_07_16_00_0{self.generation}.{self.generation}"
        folder.mkdir()
        (folder / "policy.yaml").write_text(text)
        os.utime(folder / "policy.yaml", (1_700_000_000, 1_700_000_000))  # same mtime every time
        link = self.root / "..data_tmp"
        link.symlink_to(folder.name)
        os.replace(link, self.root / "..data")

    def update(self, text: str) -> None:
        self._write(text)


def reloading_app(policy_file: str, **settings: Any) -> tuple[Flask, PolicyReloader]:
    app = create_app(Settings(policy=policy_file, **settings))
    reloader = app.extensions["extender.reloader"]
    assert isinstance(reloader, PolicyReloader)
    return app, reloader


def filter_passed(app: Flask) -> list[str]:
    response = app.test_client().post("/scheduler/filter", data=REQUEST)
    assert response.status_code == 200, response.data
    passed: list[str] = response.get_json()["NodeNames"] or []
    return passed


def version(app: Flask) -> dict[str, Any]:
    answer: dict[str, Any] = app.test_client().get("/version").get_json()
    return answer


# -- the file watch --------------------------------------------------------------------------


def test_a_configmap_update_is_seen_by_its_content_not_its_links(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    watch = PolicyFileWatch(volume.path, load_policy_text(STRICT).digest)
    assert watch.check() is None  # what runs

    volume.update(LENIENT)  # the same path, link mtimes and file mtime: only the content differs
    candidate = watch.check()
    assert candidate is not None and candidate.policy is not None
    assert candidate.policy.digest == load_policy_text(LENIENT).digest == candidate.digest
    assert candidate.policy.source == volume.path
    assert watch.check() is None  # seen

    volume.update(LENIENT)  # a new ..data with the same content is no change
    assert watch.check() is None


def test_a_broken_file_is_reported_once_and_again_on_sighup(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    watch = PolicyFileWatch(volume.path, load_policy_text(STRICT).digest)
    volume.update(BROKEN)
    candidate = watch.check()
    assert candidate is not None and candidate.policy is None and candidate.error is not None
    assert any("no-such-rule" in p for p in candidate.error.problems)
    assert any("conditions" in p for p in candidate.error.problems)  # every problem, not the first
    assert watch.check() is None
    forced = watch.check(force=True)
    assert forced is not None and forced.error is not None


def test_an_unreadable_file_is_a_failed_candidate(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(STRICT)
    watch = PolicyFileWatch(str(path), load_policy_text(STRICT).digest)
    path.unlink()
    candidate = watch.check()
    assert candidate is not None and candidate.error is not None
    assert "cannot read policy file" in candidate.error.problems[0]
    assert watch.check() is None
    path.write_bytes(b"version: 1\n# \xff\n")
    candidate = watch.check()
    assert candidate is not None and candidate.error is not None
    assert "not UTF-8" in candidate.error.problems[0]


# -- the swap --------------------------------------------------------------------------------


def test_a_valid_new_policy_answers_the_next_call_and_version_says_so(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    assert filter_passed(app) == []
    before = version(app)
    assert before["lastReload"] is None and before["policy"]["digest"] == load_policy_text(STRICT).digest
    assert reloader.check("file") is None  # nothing new

    volume.update(LENIENT)
    attempt = reloader.check("file")
    assert attempt is not None and attempt.ok
    assert filter_passed(app) == ["n-1", "n-2"]
    after = version(app)
    assert after["policy"]["digest"] == load_policy_text(LENIENT).digest
    assert after["lastReload"]["ok"] is True and after["lastReload"]["trigger"] == "file"
    assert after["loadedAt"] > before["loadedAt"]
    assert after["reloads"] == {"succeeded": 1, "failed": 0}


def test_a_broken_policy_never_replaces_the_running_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    running = app.extensions["extender.service"]
    volume.update(BROKEN)
    with caplog.at_level(logging.ERROR, "extender.policy"):
        attempt = reloader.check("file")
    assert attempt is not None and not attempt.ok
    assert app.extensions["extender.service"] is running
    assert filter_passed(app) == []
    report = version(app)
    assert report["policy"]["digest"] == load_policy_text(STRICT).digest
    last = report["lastReload"]
    assert last["ok"] is False and last["error"] == "invalid policy"
    assert last["digest"] == text_digest(BROKEN)
    assert any("no-such-rule" in p for p in last["problems"])
    assert problems(response_ref("/version", "get", 200), report) == []  # as the OpenAPI document says
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "REFUSED" in logged and "no-such-rule" in logged and "still serving digest" in logged

    assert reloader.check("file") is None  # reported once...
    again = reloader.check("signal")  # ...and again when asked to (SIGHUP)
    assert again is not None and not again.ok
    assert version(app)["reloads"] == {"succeeded": 0, "failed": 2}

    volume.update(STRICT)  # fixed back to what runs: no swap, nothing wrong any more
    back = reloader.check("file")
    assert back is not None and back.ok
    assert app.extensions["extender.service"] is running
    assert version(app)["lastReload"]["ok"] is True
    assert version(app)["loadedAt"] == report["loadedAt"]


def test_a_call_in_flight_finishes_on_the_service_it_started_with(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    started_on: ExtenderService = app.extensions["extender.verbs"].service  # as VerbEndpoint.answer takes it
    volume.update(LENIENT)
    assert reloader.check("file") is not None
    assert json.loads(started_on.filter(REQUEST))["NodeNames"] in (None, [])  # the old policy, still whole
    assert filter_passed(app) == ["n-1", "n-2"]


def test_sighup_with_an_unchanged_file_changes_nothing(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    running = app.extensions["extender.service"]
    assert reloader.check("signal") is None
    assert app.extensions["extender.service"] is running and version(app)["lastReload"] is None


def test_listeners_hear_every_attempt_once(tmp_path: Path) -> None:
    """The hook the metrics (extender_policy_reloads_total{outcome}) count from."""
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    heard: list[ReloadAttempt] = []
    reloader.status.listeners.append(heard.append)
    reloader.status.listeners.append(lambda attempt: 1 / 0)  # a broken listener undoes nothing
    for text in (LENIENT, BROKEN, STRICT):
        volume.update(text)
        reloader.check("file")
    assert [a.ok for a in heard] == [True, False, True]
    assert filter_passed(app) == []


def test_a_policy_needing_api_access_the_process_lacks_is_refused(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    app, reloader = reloading_app(volume.path)
    volume.update("version: 1\nbind: {enabled: true}\n")
    attempt = reloader.check("file")
    assert attempt is not None and not attempt.ok
    assert "Kubernetes API access (bind)" in attempt.error and "restart" in attempt.error
    assert version(app)["lastReload"]["error"] == attempt.error
    assert version(app)["policy"]["bind"] is False


# -- what is reused ------------------------------------------------------------------------


def test_metric_sources_are_kept_when_unchanged_and_restarted_when_changed(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, ANNOTATIONS % "cpu_usage_avg_5m")
    app, reloader = reloading_app(volume.path)
    first: LoadState = app.extensions["extender.load"]
    first.start()
    second: LoadState | None = None
    try:
        volume.update(ANNOTATIONS % "cpu_usage_avg_5m" + "# a comment: new digest, same sources\n")
        assert reloader.check("file") is not None
        assert app.extensions["extender.load"] is first
        assert app.extensions["extender.service"].load._samples is first.store

        volume.update(ANNOTATIONS % "mem_usage_avg_5m")  # another key: the source is rebuilt
        assert reloader.check("file") is not None
        second = app.extensions["extender.load"]
        assert second is not None and second is not first
        assert app.extensions["extender.service"].load._samples is second.store
        assert all(not r._thread.is_alive() for r in first.refreshers if r._thread is not None)
        health = app.test_client().get("/healthz").get_json()
        assert health["sources"]["crane"]["keys"] == ["mem_usage_avg_5m"]

        volume.update(STRICT)  # no sources at all
        assert reloader.check("file") is not None
        assert app.extensions["extender.load"] is None
        assert "sources" not in app.test_client().get("/healthz").get_json()
    finally:
        load = app.extensions["extender.load"]
        if load is not None:
            load.stop()
        if second is not None:
            second.stop()


def test_a_replaced_service_stops_following_the_node_cache() -> None:
    """One subscription per running service, however many reloads: no leak."""
    store = NodeStore()
    policy = load_policy_text(STRICT)
    services = [ExtenderService(policy, nodes=store) for _ in range(3)]
    for service in services[:-1]:
        service.close()
    assert store._listeners == [services[-1].engine.forget_node]


# -- the watch thread ----------------------------------------------------------------------


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_thread_polls_and_wakes_on_demand(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, STRICT)
    polling_app, polling = reloading_app(volume.path, policy_poll_seconds=0.05)
    woken_app, woken = reloading_app(volume.path, policy_poll_seconds=0)
    polling.start()
    woken.start()
    try:
        volume.update(LENIENT)
        wait_for(lambda: filter_passed(polling_app) == ["n-1", "n-2"], "the poll to apply the new policy")
        assert filter_passed(woken_app) == []  # polling off: only a wake-up re-reads
        woken.wake()
        wait_for(lambda: filter_passed(woken_app) == ["n-1", "n-2"], "the wake-up to apply the new policy")
        assert version(woken_app)["lastReload"]["trigger"] == "signal"
    finally:
        polling.stop()
        woken.stop()


def test_a_worker_starting_while_the_file_is_broken_serves_the_start_up_policy(tmp_path: Path) -> None:
    """A worker respawned (after a crash) must not fail to boot: that stops gunicorn."""
    volume = ConfigMapVolume(tmp_path, STRICT)
    startup = load_policy_text(STRICT, volume.path)
    volume.update(BROKEN)
    server = ExtenderServer(Settings(policy=volume.path, policy_poll_seconds=0), startup)
    app = server.load()
    try:
        assert filter_passed(app) == []
        report = version(app)
        assert report["policy"]["digest"] == startup.digest
        assert report["lastReload"]["ok"] is False and any("no-such-rule" in p for p in report["lastReload"]["problems"])
    finally:
        app.extensions["extender.reloader"].stop()
    with pytest.raises(PolicyError):  # without a start-up policy, as before
        ExtenderServer(Settings(policy=volume.path, policy_poll_seconds=0)).load()


def test_a_worker_starting_while_the_file_is_broken_serves_the_last_reloaded_policy(tmp_path: Path) -> None:
    """After a reload, a worker respawned while the file is broken serves what the others
    serve (the reloaded policy), not the one the server started with."""
    (tmp_path / "volume").mkdir()
    volume = ConfigMapVolume(tmp_path / "volume", STRICT)
    runtime = tmp_path / "runtime"
    settings = Settings(policy=volume.path, policy_poll_seconds=0, runtime_dir=str(runtime))
    startup = load_policy_text(STRICT, volume.path)
    running = ExtenderServer(settings, startup).load()  # a worker that sees the next reload
    try:
        volume.update(LENIENT)
        attempt = running.extensions["extender.reloader"].check("file")
        assert attempt is not None and attempt.ok
        reloaded = running.extensions["extender.service"].policy
        assert reloaded.digest != startup.digest
    finally:
        running.extensions["extender.reloader"].stop()
    volume.update(BROKEN)
    respawned = ExtenderServer(settings, startup).load()
    try:
        assert version(respawned)["policy"]["digest"] == reloaded.digest
        assert filter_passed(respawned) == ["n-1", "n-2"]  # out of scope, as the reloaded policy says
    finally:
        respawned.extensions["extender.reloader"].stop()


def test_a_hangup_before_the_app_is_loaded_wakes_its_watch_once_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP may reach a worker between its reading the file and its app being ready."""
    volume = ConfigMapVolume(tmp_path, STRICT)
    server = ExtenderServer(Settings(policy=volume.path, policy_poll_seconds=0))
    server.hangup()  # before load(): remembered
    with caplog.at_level(logging.INFO, "extender.policy"):
        app = server.load()
        try:
            # the watch, woken at once, re-read the file (unchanged here: nothing to do)
            wait_for(lambda: "unchanged" in caplog.text, "the watch to re-read the file")
            volume.update(LENIENT)
            assert filter_passed(app) == []  # polling is off: it waits for the next SIGHUP
            server.hangup()
            wait_for(lambda: filter_passed(app) == ["n-1", "n-2"], "the SIGHUP to apply the new policy")
        finally:
            app.extensions["extender.reloader"].stop()
