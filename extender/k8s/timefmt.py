"""RFC 3339 timestamps and Go-style durations ("90s", "1h30m", plus "d" for days)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_RELATIVE = re.compile(r"^now(?:(?P<sign>[+-])(?P<duration>.+))?$")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string such as ``30m`` or ``1h30m``; ``d`` (24h) is also accepted."""
    text = text.strip()
    negative = text.startswith("-")
    body = text.lstrip("+-")
    if body == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        seconds += float(match[1]) * _UNIT_SECONDS[match[2]]
        pos = match.end()
    if pos == 0 or pos != len(body):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h30m, 2d)")
    return timedelta(seconds=-seconds if negative else seconds)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime (UTC if it names no offset)."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def parse_time_reference(text: str, now: datetime) -> datetime:
    """Parse ``now``, ``now+24h``, ``now-7d`` or an RFC 3339 timestamp relative to ``now``."""
    match = _RELATIVE.match(text.strip())
    if match is None:
        return parse_timestamp(text)
    if match["sign"] is None:
        return now
    delta = parse_duration(match["duration"])
    return now + delta if match["sign"] == "+" else now - delta


def is_time_reference(text: str) -> bool:
    """True if ``text`` is a valid argument for :func:`parse_time_reference`."""
    try:
        parse_time_reference(text, datetime.now(timezone.utc))
    except ValueError:
        return False
    return True


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (what :func:`utc_stamp` writes fastest)."""
    return datetime.now(timezone.utc)


def utc_stamp(moment: datetime) -> str:
    """``2026-12-07T16:55:01.123456Z``, as decision records, reload reports and Events write
    times (a naive ``moment`` is taken as UTC; isoformat is cheaper than strftime)."""
    if moment.tzinfo is timezone.utc:  # the service's clock: "...+00:00" -> "...Z"
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"
