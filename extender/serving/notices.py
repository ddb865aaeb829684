"""Log lines about refused clients, at most one per kind per interval, with counts.

A port scan or a flood of bad clients must not flood the log: the first refusal of a kind
is logged at once, later ones are counted and summarised in the next line of that kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Notices:
    """Rate-limited INFO lines keyed by a short kind ("408", "tls")."""

    def __init__(
        self, log: logging.Logger, *, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def notice(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless a line of this kind was logged less than
        ``interval`` seconds ago; then only count it."""
        now = self._clock()
        if now < self._next.get(kind, 0.0):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._next[kind] = now + self.interval
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (and %d more like it in the last %gs)"
            args = (*args, suppressed, self.interval)
        self.log.info(message, *args)
