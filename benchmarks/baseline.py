"""The baseline: what the standard library alone costs a naive Python extender on the same body,
before it does any work: ``json.loads`` the request, ``json.dumps`` the filter reply."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any


def stdlib_round_trip_ms(body: bytes, reply: dict[str, Any], repeats: int = 5) -> float:
    """Median ms of loads(request) + dumps(reply), in process, with the GC on as in a server."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        json.loads(body)
        json.dumps(reply)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000
