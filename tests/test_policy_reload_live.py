"""Policy hot reload in a real ``extender serve`` (gunicorn, 2 workers) under concurrent load:
the policy is swapped (good, broken, good) by a ConfigMap-style update and by SIGHUP while
client threads keep calling filter, on keep-alive and on new connections.

Every call must be answered 200; once each worker has logged the reload, every answer
follows the new policy; the broken policy never answers a call and shows in every worker's
/version; the workers are never restarted.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from extender.policy.loader import text_digest
from tests.live_server import Server, running_server
from tests.test_policy_reload import BROKEN, LENIENT, REQUEST, STRICT, ConfigMapVolume

#: each client thread's bound (the swaps take a few hundred calls at most)
MAX_CALLS = 5000


def answer_of(body: dict[str, object]) -> str:
    """Which policy answered: STRICT rejects both (unknown) names, LENIENT passes both."""
    names = body.get("NodeNames") or []
    if names == ["n-1", "n-2"]:
        return "lenient"
    assert names == [], body
    return "strict"


@dataclass
class Load:
    """Client threads calling filter until stopped; each checks its answer against what the
    test allows when the call is sent (widened before a swap, narrowed after it is done)."""

    server: Server
    allowed: frozenset[str]
    generation: int = 0
    seen: dict[int, int] = field(default_factory=dict)
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, index: int, keep_alive: bool) -> None:
        session = requests.Session() if keep_alive else None
        url = f"{self.server.url}/scheduler/filter"
        headers = {"Content-Type": "application/json"}
        for _ in range(MAX_CALLS):
            if self.stopped.is_set():
                return
            with self.lock:
                allowed, self.seen[index] = self.allowed, self.generation
            try:
                if session is not None:
                    response = session.post(url, data=REQUEST, headers=headers, timeout=10)
                else:
                    response = requests.post(url, data=REQUEST, headers={**headers, "Connection": "close"}, timeout=10)
                if response.status_code != 200:
                    self.failures.append(f"status {response.status_code}: {response.text[:200]}")
                elif answer_of(response.json()) not in allowed:
                    self.failures.append(f"{answer_of(response.json())} answered while only {sorted(allowed)} may")
            except (requests.RequestException, ValueError, AssertionError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            with self.lock:
                self.calls += 1

    def allow(self, answers: set[str]) -> None:
        """From now on these answers are right; when widening, wait until every client has
        sent a call since (a call sent before may be answered after the swap)."""
        with self.lock:
            self.allowed = frozenset(answers)
            self.generation += 1
            generation = self.generation
        wait_for(lambda: all(g >= generation for g in self.seen.values()), "every client to send a new call")

    def wait_for_calls(self, count: int, what: str) -> None:
        """Wait until ``count`` more calls have been answered (and checked)."""
        calls = self.calls
        wait_for(lambda: self.calls >= calls + count, what)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def under_load(server: Server, allowed: set[str]) -> Iterator[Load]:
    load = Load(server, frozenset(allowed))
    clients = [threading.Thread(target=load.client, args=(i, i % 2 == 0), daemon=True) for i in range(4)]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(load.seen) == len(clients) and load.calls >= 20, "the clients to start")
        yield load
    finally:
        load.stopped.set()
        for thread in clients:
            thread.join(30)
    assert not load.failures, load.failures[:10]
    assert load.calls > 0


def logged_by_every_worker(server: Server, pattern: str) -> Callable[[], bool]:
    """Whether every worker has logged a line matching ``pattern`` (``{pid}`` filled in)."""

    def check() -> bool:
        text = server.log_text()
        return all(re.search(pattern.format(pid=pid), text) for pid in server.worker_pids())

    return check


def every_worker_version(server: Server, condition: Callable[[dict[str, object]], bool]) -> None:
    """/version from every worker (new connections until each has answered) meets ``condition``."""
    pids, answered = set(server.worker_pids()), set()
    for _ in range(400):
        report = requests.get(f"{server.url}/version", headers={"Connection": "close"}, timeout=10).json()
        assert condition(report), report
        answered.add(report["worker"])
        if answered >= pids:
            return
    raise AssertionError(f"/version answered by workers {answered}, not all of {pids}")


def refused_broken(report: dict[str, object], running: str) -> bool:
    last = report["lastReload"]
    assert isinstance(last, dict) and isinstance(report["policy"], dict)
    return (
        report["policy"]["digest"] == running
        and last["ok"] is False
        and last["digest"] == text_digest(BROKEN)
        and any("no-such-rule" in p for p in last["problems"])
    )


@contextmanager
def serving_a_volume(tmp_path: Path, poll_seconds: str) -> Iterator[tuple[Server, ConfigMapVolume]]:
    """``extender serve`` with 2 workers on the STRICT policy in a ConfigMap-style volume."""
    (tmp_path / "volume").mkdir()
    volume = ConfigMapVolume(tmp_path / "volume", STRICT)
    args = ("--policy", volume.path, "--policy-poll-seconds", poll_seconds, "--workers", "2", "--threads", "4")
    with running_server(tmp_path, *args, ready=lambda s: s.ready() and len(s.worker_pids()) == 2) as server:
        yield server, volume


def test_file_updates_swap_policies_under_load_with_no_failed_call(tmp_path: Path) -> None:
    with serving_a_volume(tmp_path, poll_seconds="0.2") as (server, volume):
        workers = server.worker_pids()
        strict, lenient = text_digest(STRICT), text_digest(LENIENT)
        with under_load(server, {"strict"}) as load:
            load.allow({"strict", "lenient"})
            volume.update(LENIENT)
            wait_for(logged_by_every_worker(server, rf"policy reloaded in worker {{pid}} \(file changed\): .* {strict} -> {lenient}"),
                     "every worker to reload the lenient policy")
            load.allow({"lenient"})
            every_worker_version(server, lambda r: r["policy"]["digest"] == lenient and r["lastReload"]["ok"] is True)  # type: ignore[index]

            volume.update(BROKEN)  # never answers: "lenient" stays the only right answer throughout
            wait_for(logged_by_every_worker(server, rf"policy reload REFUSED in worker {{pid}} \(file changed\): .*no-such-rule.*still serving digest {lenient}"),
                     "every worker to refuse the broken policy")
            every_worker_version(server, lambda r: refused_broken(r, lenient))
            load.wait_for_calls(40, "calls after the refusal")

            load.allow({"lenient", "strict"})
            volume.update(STRICT)
            wait_for(logged_by_every_worker(server, rf"policy reloaded in worker {{pid}} \(file changed\): .* {lenient} -> {strict}"),
                     "every worker to reload the strict policy")
            load.allow({"strict"})
            load.wait_for_calls(40, "calls after the last swap")
        assert server.worker_pids() == workers  # reloaded in place, never restarted


def test_sighup_makes_every_worker_reload_in_place(tmp_path: Path) -> None:
    with serving_a_volume(tmp_path, poll_seconds="0") as (server, volume):
        workers = server.worker_pids()
        strict, lenient = text_digest(STRICT), text_digest(LENIENT)
        with under_load(server, {"strict"}) as load:
            volume.update(LENIENT)  # polling is off: nothing changes until SIGHUP
            load.wait_for_calls(40, "calls after the file changed")
            every_worker_version(server, lambda r: r["policy"]["digest"] == strict and r["lastReload"] is None)

            load.allow({"strict", "lenient"})
            os.kill(server.process.pid, signal.SIGHUP)
            wait_for(logged_by_every_worker(server, rf"policy reloaded in worker {{pid}} \(SIGHUP\): .* {strict} -> {lenient}"),
                     "every worker to reload on SIGHUP")
            load.allow({"lenient"})
            every_worker_version(server, lambda r: r["lastReload"]["trigger"] == "signal" and r["policy"]["digest"] == lenient)  # type: ignore[index]

            volume.update(BROKEN)
            os.kill(server.process.pid, signal.SIGHUP)
            wait_for(logged_by_every_worker(server, rf"policy reload REFUSED in worker {{pid}} \(SIGHUP\): .*no-such-rule"),
                     "every worker to refuse the broken policy")
            every_worker_version(server, lambda r: refused_broken(r, lenient))
            load.wait_for_calls(40, "calls after the refusal")
        assert server.worker_pids() == workers  # SIGHUP no longer restarts the workers
        assert "Hang up: every worker re-reads the policy" in server.log_text()
