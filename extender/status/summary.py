"""One line saying what the extender decided for a pod, from its decision records.

"extender: 5/8 nodes passed; 3 rejected by node-condition (KernelDeadlock=True); best
node-00004 score 9 (node-cost 10, node-metadata 7)": the note of the pod's Event and the
status page's summary column. Pure functions of the record dicts (the decision record's
shape: README "Status page").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Record = Mapping[str, Any]
#: an Event's note is at most 1 KiB (events.k8s.io/v1 validation)
MAX_NOTE_BYTES = 1024
#: rejections named in a summary before the rest are counted as "+N more"
_SHOWN_REJECTIONS = 3
_SHOWN_RULES = 5
#: the scheduler-style prefixes of a reason that add nothing after "rejected by <rule>"
_REASON_PREFIXES = ("node(s) had condition ", "node(s) ")


def _short_reason(reason: str) -> str:
    for prefix in _REASON_PREFIXES:
        if reason.startswith(prefix):
            return reason[len(prefix) :]
    return reason


def _number(value: Any) -> str:
    """10.0 -> "10", 7.25 -> "7.2" (summaries are read, not computed with)."""
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    return str(value)


def filter_part(record: Record) -> str:
    """"5/8 nodes passed; 3 rejected by node-condition (KernelDeadlock=True)"."""
    if record.get("outcome") == "out-of-scope":
        return f"{record.get('nodes', 0)} nodes untouched (pod out of the policy's scope)"
    if record.get("outcome") == "error":
        return f"{record.get('verb', 'filter')} answered an error: {record.get('error', 'see the extender log')}"
    parts = [f"{record.get('passed', 0)}/{record.get('nodes', 0)} nodes passed"]
    rejected = [r for r in record.get("rejected") or () if isinstance(r, Mapping)]
    for rejection in rejected[:_SHOWN_REJECTIONS]:
        rule = rejection.get("rule") or ""
        reason = _short_reason(str(rejection.get("reason", "")))
        by = f" by {rule}" if rule else ""
        parts.append(f"{rejection.get('count', 0)} rejected{by} ({reason})")
    if len(rejected) > _SHOWN_REJECTIONS:
        more = sum(int(r.get("count", 0)) for r in rejected[_SHOWN_REJECTIONS:])
        parts.append(f"{more} rejected for {len(rejected) - _SHOWN_REJECTIONS} more reason(s)")
    if record.get("unknown"):
        parts.append(f"{record['unknown']} unknown to the node cache")
    return "; ".join(parts)


def prioritize_part(record: Record) -> str:
    """"best node-00004 score 9 (node-cost 10, node-metadata 7)"."""
    if record.get("outcome") != "answered":
        return filter_part(record)
    best = record.get("best")
    if not isinstance(best, Mapping) or not best.get("node"):
        return f"{record.get('nodes', 0)} nodes scored"
    rules = best.get("rules") or {}
    shown = ", ".join(f"{rule} {_number(score)}" for rule, score in list(rules.items())[:_SHOWN_RULES])
    return f"best {best['node']} score {best.get('score', 0)}" + (f" ({shown})" if shown else "")


def summary_line(filtered: Record | None = None, prioritized: Record | None = None) -> str:
    """The summary of one pod's filter and/or prioritize records, at most 1 KiB of UTF-8."""
    parts = []
    if filtered is not None:
        parts.append(filter_part(filtered))
    if prioritized is not None:
        parts.append(prioritize_part(prioritized))
    line = "extender: " + ("; ".join(parts) if parts else "no decision")
    encoded = line.encode("utf-8")
    if len(encoded) <= MAX_NOTE_BYTES:
        return line
    return encoded[: MAX_NOTE_BYTES - 3].decode("utf-8", "ignore") + "..."


def record_summary(record: Record) -> str:
    """One record's part of a summary (the status page's list)."""
    verb = record.get("verb")
    if verb == "prioritize":
        return prioritize_part(record)
    if verb == "bind":
        error = record.get("error")
        return f"bound to {record.get('node', '?')}" if not error else f"bind to {record.get('node', '?')} failed: {error}"
    if verb == "preempt":
        return f"{record.get('kept', 0)} of {record.get('nodes', 0)} candidates kept"
    return filter_part(record)
