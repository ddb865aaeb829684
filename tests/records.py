"""Reading decision records back from logs (one JSON line per verb call on extender.decisions)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def decision_records(lines: Iterable[str], verb: str | None = None) -> list[dict[str, Any]]:
    """The records among ``lines`` (log messages, or whole log lines ending in the JSON), of
    ``verb`` if given."""
    found = []
    for line in lines:
        start = line.find('{"verb":')
        if start < 0:
            continue
        record = json.loads(line[start:])
        if verb is None or record["verb"] == verb:
            found.append(record)
    return found


def rejected_count(record: dict[str, Any]) -> int:
    return sum(group["count"] for group in record["rejected"])
