"""Policy problems as ``field.path[index]: message`` lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import re
from typing import Any

# marshmallow's defaults, reworded for an operator reading a terminal
_REWORDED = {
    "Missing data for required field.": "required",
    "Unknown field.": "unknown field",
    "Field may not be null.": "must not be null",
    "Not a valid string.": "must be a string",
    "Not a valid integer.": "must be an integer",
    "Not a valid number.": "must be a number",
    "Not a valid boolean.": "must be true or false",
    "Not a valid list.": "must be a list",
    "Not a valid mapping type.": "must be a mapping",
    "Invalid input type.": "must be a mapping",
}


class PolicyError(ValueError):
    """The policy is invalid; ``problems`` lists every one with its field path."""

    def __init__(self, problems: Sequence[str], source: str = "policy") -> None:
        self.problems = sorted(problems, key=_path_order)
        self.source = source
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in self.problems))


def _path_order(line: str) -> list[tuple[int, int | str]]:
    """Sort key putting problems in document order: ``a[10]`` after ``a[2]``."""
    path = line.split(": ", 1)[0]
    return [(0, int(tok)) if tok.isdigit() else (1, tok) for tok in re.split(r"[.\[\]]+", path) if tok]


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key == "_schema":
        return path
    return f"{path}.{key}" if path else str(key)


def _reword(message: str) -> str:
    return _REWORDED.get(message, message)


def flatten(messages: Any, path: str = "") -> list[str]:
    """Turn marshmallow's nested error dict into sorted ``path: message`` lines."""
    lines: list[str] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            lines.extend(flatten(value, _join(path, key)))
    elif isinstance(messages, str):
        lines.append(f"{path or '(top level)'}: {_reword(messages)}")
    elif isinstance(messages, Iterable):
        for item in messages:
            lines.extend(flatten(item, path))
    return lines
