"""Decision records with tables as fixed-width text, for people (``extender explain``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extender.decisions.record import Record

#: widest cell; longer reasons are cut here and given in full under the table
CELL = 40


def _cell(value: str) -> str:
    return value if len(value) <= CELL else value[: CELL - 3] + "..."


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[_cell(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]


def _headline(record: Record) -> str:
    pod = record["pod"]
    return (
        f"{record['verb']} of pod {pod['namespace']}/{pod['name']}: {record['nodes']} node(s) by "
        f"{'name' if record['mode'] == 'names' else 'Node object'}, policy {record['policy']}, {record['outcome']}"
    )


def _rule_header(name: str, table: dict[str, Any], scored: bool) -> str:
    shadow = " (shadow)" if name in table.get("shadow", ()) else ""
    weight = f" x{table['weights'][name]:g}" if scored and name in table.get("weights", {}) else ""
    return f"{name}{weight}{shadow}"


def _score(normalised: Any, raw: Any) -> str:
    if normalised is None:  # the rule does not apply, or the node is unknown
        return str(raw)
    shown_raw = f"{raw:g}" if isinstance(raw, float | int) and not isinstance(raw, bool) else "none" if raw is None else str(raw)
    return f"{normalised:.1f} (raw {shown_raw})"


def _footer(record: Record, lines: list[str]) -> None:
    if record["outcome"] == "error":
        lines.append(f"error: {record.get('error', '')}")
    for failure in record.get("failures", []):
        lines.append(f"rule {failure['rule']} raised on {failure['count']} evaluation(s), {failure['action']}: {failure['message']}")
    if record.get("table", {}).get("truncated"):
        lines.append(f"({record['table']['truncated']} more node(s) not shown)")


def render_filter(record: Record) -> list[str]:
    """The filter record: nodes x predicates, the answer per node, the rejections in full."""
    lines = [_headline(record)]
    table = record.get("table")
    if table is not None and table["rows"]:
        header = ["NODE", *(_rule_header(r, table, False) for r in table["rules"]), "ANSWER"]
        rows = [
            [row["node"], *(row["verdicts"].get(rule, "unknown node") for rule in table["rules"]), row["answer"]]
            for row in table["rows"]
        ]
        lines += _grid(header, rows)
    if record["outcome"] == "answered":
        rejected = sum(group["count"] for group in record["rejected"])
        lines.append(f"passed {record['passed']} of {record['nodes']}, rejected {rejected}")
        for group in record["rejected"]:
            kind = "failed" if group["resolvable"] else "unresolvable"
            lines.append(
                f"  {group['rule']}: {group['reason']} ({group['count']} {kind}): {', '.join(group['nodes'])}"
            )
        for shadow in record["shadow"]:
            lines.append(f"  shadow {shadow['rule']} would reject {shadow['wouldReject']}")
    _footer(record, lines)
    return lines


def render_prioritize(record: Record) -> list[str]:
    """The prioritize record: nodes x priorities (normalised, raw), the combined score, the winner."""
    lines = [_headline(record)]
    table = record.get("table")
    if table is not None and table["rows"]:
        header = ["NODE", *(_rule_header(r, table, True) for r in table["rules"]), "SCORE", "ANSWER"]
        rows = [
            [
                row["node"],
                *(_score(row["normalised"].get(rule), row["raw"].get(rule, "unknown node")) for rule in table["rules"]),
                str(row["score"]),
                row["answer"],
            ]
            for row in table["rows"]
        ]
        lines += _grid(header, rows)
    best = record.get("best")
    if record["outcome"] == "answered":
        if best:
            parts = ", ".join(f"{rule} {score:.1f}" for rule, score in best["rules"].items())
            lines.append(f"winner: {best['node']} (score {best['score']}{'; ' + parts if parts else ''})")
        else:
            lines.append("winner: none (no nodes)")
        for shadow in record["shadow"]:
            lines.append(f"  shadow {shadow['rule']} would change {shadow['wouldChange']} score(s), best {shadow['wouldBest']}")
    _footer(record, lines)
    return lines


def render(explained: Record) -> str:
    """A record (filter or prioritize) or ``{"filter", "prioritize", "winner"}`` as text."""
    if "verb" in explained:
        lines = render_filter(explained) if explained["verb"] == "filter" else render_prioritize(explained)
        return "\n".join(lines) + "\n"
    lines = render_filter(explained["filter"])
    if explained["prioritize"] is not None:
        lines += ["", *render_prioritize(explained["prioritize"])]
    if explained["winner"] is None:
        lines.append("winner: none (no node passed the filter)")
    return "\n".join(lines) + "\n"
