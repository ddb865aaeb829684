"""Policy hot reload, the part that knows nothing of processes or HTTP: noticing that the
policy file has new content, validating it, and recording how each attempt went.

A ConfigMap volume shows the file as ``policy.yaml -> ..data/policy.yaml`` with ``..data``
a symlink that kubelet swaps atomically to a new timestamped directory: the link's mtime
and the file's path never change, so a change is told by a digest of the content (the same
digest :attr:`Policy.digest <extender.engine.model.Policy.digest>` carries).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from extender.engine.model import Policy
from extender.k8s.timefmt import utc_now, utc_stamp
from extender.policy.errors import PolicyError
from extender.policy.loader import load_policy_text, read_policy_file, text_digest
from extender.telemetry.runtime import POLICY_SUBDIR

log = logging.getLogger("extender.policy")

#: what asked for a reload: the file watch saw new content, or SIGHUP
Trigger = Literal["file", "signal"]


@dataclass(frozen=True)
class Candidate:
    """New content of the policy file: the policy it validated to, or why it did not."""

    digest: str
    policy: Policy | None = None
    error: PolicyError | None = None
    #: the file's text (kept for a valid policy: :func:`remember_good`)
    text: str = ""


class PolicyFileWatch:
    """Reads the policy file and says when its content differs from what was last seen.

    ``seen`` starts as the running policy's digest. Content that failed is remembered too,
    so a broken file is reported once, not at every poll; :meth:`check` with ``force``
    (SIGHUP) reads and validates it again whatever was seen.
    """

    def __init__(self, path: str, seen: str) -> None:
        self.path = path
        self.seen = seen

    def check(self, force: bool = False) -> Candidate | None:
        """The file's content if it is new (or ``force``), validated; None if unchanged."""
        try:
            text = read_policy_file(self.path)
        except PolicyError as exc:
            seen = f"unreadable: {exc.problems[0]}"  # the same failure is reported once
            if seen == self.seen and not force:
                return None
            self.seen = seen
            return Candidate("", error=exc)
        digest = text_digest(text)
        if digest == self.seen and not force:
            return None
        self.seen = digest
        try:
            return Candidate(digest, policy=load_policy_text(text, self.path), text=text)
        except PolicyError as exc:
            return Candidate(digest, error=exc)


#: where, in the runtime directory the workers share, the last policy a reload applied is kept
LAST_GOOD = Path(POLICY_SUBDIR) / "last-good.yaml"


def remember_good(runtime_dir: str | None, text: str) -> None:
    """Keep ``text``, a policy a reload just applied, for workers that start later while the
    file is broken (:func:`last_good`): they then serve what the others serve, not the
    policy the server started with. Atomic (a reader sees the old or the new text); a
    failure is logged, never fatal to the reload."""
    if runtime_dir is None or not text:
        return
    target = Path(runtime_dir) / LAST_GOOD
    partial = target.with_name(f".{target.name}.{threading.get_ident()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        log.warning("could not keep the reloaded policy in %s: %s", target, exc)


def last_good(runtime_dir: str | None) -> str | None:
    """The text :func:`remember_good` kept, if any."""
    if runtime_dir is None:
        return None
    try:
        return (Path(runtime_dir) / LAST_GOOD).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class ReloadAttempt:
    """One reload that was tried: when, why, and whether the new policy now runs."""

    time: datetime
    trigger: Trigger
    ok: bool
    #: digest of the content tried ("" if the file could not be read)
    digest: str
    #: why it was refused, in one line ("" when ok)
    error: str = ""
    #: every problem of an invalid policy, with its field path
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """For ``/version``'s ``lastReload``."""
        report: dict[str, Any] = {"time": utc_stamp(self.time), "trigger": self.trigger, "ok": self.ok, "digest": self.digest}
        if not self.ok:
            report["error"] = self.error
            report["problems"] = list(self.problems)
        return report


#: told of every attempt, after it is recorded (e.g. extender_policy_reloads_total{outcome})
ReloadListener = Callable[[ReloadAttempt], None]


@dataclass
class ReloadStatus:
    """This worker's reload state: when the running policy was loaded, the last attempt.

    :meth:`record` is the one place a reload is counted as succeeded or failed; whoever
    counts them (metrics) appends to ``listeners``.
    """

    #: digest of the running policy, and since when it runs
    digest: str = ""
    loaded_at: datetime = field(default_factory=utc_now)
    last: ReloadAttempt | None = None
    succeeded: int = 0
    failed: int = 0
    listeners: list[ReloadListener] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, attempt: ReloadAttempt) -> None:
        """Note ``attempt`` (after a success, the new policy already answers) and tell the
        listeners; a listener that raises is logged, never fatal to the reload."""
        with self._lock:
            self.last = attempt
            if attempt.ok:
                if attempt.digest != self.digest:  # else the file came back to what runs
                    self.digest, self.loaded_at = attempt.digest, attempt.time
                self.succeeded += 1
            else:
                self.failed += 1
        for listener in list(self.listeners):
            try:
                listener(attempt)
            except Exception:  # noqa: BLE001 - reporting must not undo or break a reload
                log.exception("policy reload listener %r failed", listener)

    def as_dict(self) -> dict[str, Any]:
        """``loadedAt`` and ``lastReload`` (None until one was tried), for ``/version``."""
        last = self.last
        return {
            "loadedAt": utc_stamp(self.loaded_at),
            "lastReload": last.as_dict() if last is not None else None,
            "reloads": {"succeeded": self.succeeded, "failed": self.failed},
        }
