"""Duplicate keys in a JSON object are an error, named with the key and where it is.

msgspec, like Go's encoding/json, keeps the last of two equal keys; kube-scheduler never
sends one (it encodes Go structs and maps), so a duplicate is a hand-written request that
means something other than what we would read. msgspec cannot report them. First, a text
that is exactly the compact encoding of what it decodes to has none (re-encoding writes each
key kept once; a repeated key would make the text longer than that): Go's encoding/json
writes such text, and msgspec checks it in ~3 us per KB. Any other text is checked by a
second pass with the standard library's C scanner, which hands every object's key/value
pairs to a hook before building it. That costs ~7 us per KB, which is why requests check
only what they can afford (see :mod:`extender.codec.kube_scheduler`): every object of a
body up to :data:`FULL_CHECK_BYTES` (:data:`FULL_NODE_CHECK_BYTES` for full-node
requests), the Pod object of a larger one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from msgspec import Raw

from extender.codec.common import Body, WireError, too_deep

#: bodies up to this size are checked whole (names mode, bind, preempt)
FULL_CHECK_BYTES = 128 * 1024
#: full-node requests are checked whole only up to this (a node or three, written by hand;
#: the curl example's 6 small nodes are 23 KB): kube-scheduler's carry 7-10 KB per node
FULL_NODE_CHECK_BYTES = 32 * 1024
#: keys are quoted in messages up to this many characters
_SHOWN = 64


class _Duplicate(Exception):
    pass


def _check_pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    # dict() of the pairs is C code; building the object itself is not needed, so the
    # hook hands back the list it was given (no work) and the parent holds that.
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        raise _Duplicate
    return pairs


def _nothing(text: str) -> None:
    # Numbers are not needed either: skipping int() also avoids its 4300-digit limit.
    return None


_SCANNER = json.JSONDecoder(
    object_pairs_hook=_check_pairs, parse_int=_nothing, parse_float=_nothing, parse_constant=_nothing
)


_GENERIC = msgspec.json.Decoder()
_COMPACT = msgspec.json.Encoder()
#: not decoded (a text msgspec does not take back as it wrote it)
_NOT_COMPACT = object()


def _compact_value(data: Body | Raw) -> Any:
    """What ``data`` decodes to, if ``data`` is exactly its compact encoding (then no object
    in it has a key twice); else ``_NOT_COMPACT``."""
    try:
        value = _GENERIC.decode(data)
    except (msgspec.DecodeError, RecursionError):  # too deep for msgspec: the scanner says why
        return _NOT_COMPACT
    return value if memoryview(data) == _COMPACT.encode(value) else _NOT_COMPACT


class _Pairs(list[tuple[str, Any]]):
    """An object's pairs in order (the slow path that locates a duplicate keeps them)."""


_LOCATING = json.JSONDecoder(
    object_pairs_hook=_Pairs, parse_int=_nothing, parse_float=_nothing, parse_constant=_nothing
)


def check_unique_keys(data: Body | Raw, where: str, envelope: tuple[str, ...] = ()) -> None:
    """Raise :class:`WireError` if an object in ``data`` (valid JSON, already decoded once)
    has a key twice: ``Pod.metadata: duplicate key 'name'``. ``where`` is the location of
    ``data``, ``"body"`` for the whole request.

    ``envelope`` names the top-level keys that match case-insensitively (kube-scheduler's
    untagged Go structs): ``Pod`` and ``pod`` are then the same key given twice, which Go
    would resolve by order and the fast path by exact spelling.
    """
    compact = _compact_value(data)
    if compact is not _NOT_COMPACT:
        if envelope and isinstance(compact, dict) and len(compact) > 1:
            _check_envelope_case(list(compact.items()), envelope)
        return
    try:
        text = str(data, "utf-8")  # any buffer: bytes, bytearray, Raw
        top = _SCANNER.decode(text)
    except _Duplicate:
        path, key = _locate(text)
        location = f"{where}{path}" if where != "body" else path[1:] if path[:1] == "." else f"request body{path}"
        raise WireError(f"{location}: duplicate key {_quote(key)}") from None
    except RecursionError:
        raise too_deep(where) from None
    except ValueError as exc:  # pragma: no cover - msgspec accepted this text already
        raise WireError(f"{'request body' if where == 'body' else where}: {exc}") from None
    if envelope and isinstance(top, list) and len(top) > 1:
        _check_envelope_case(top, envelope)


def _check_envelope_case(pairs: list[tuple[str, Any]], envelope: tuple[str, ...]) -> None:
    canonical = {name.lower(): name for name in envelope}
    seen: dict[str, str] = {}
    for key, _ in pairs:
        name = canonical.get(key.lower())
        if name is None:
            continue
        if name in seen:
            raise WireError(
                f"request body: duplicate key {_quote(key)} (the same as {_quote(seen[name])}: "
                "envelope keys match case-insensitively)"
            )
        seen[name] = key


def _locate(text: str) -> tuple[str, str]:
    """The path (``.metadata``, ``.items[3].metadata.labels``) and key of the first duplicate."""
    try:
        root = _LOCATING.decode(text)
    except RecursionError:  # pragma: no cover - the checking pass went as deep
        return "", "?"
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:  # iterative: the document may nest as deep as the interpreter allows
        path, value = stack.pop()
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    return path, key
                seen.add(key)
            stack.extend((f"{path}{_segment(k)}", v) for k, v in reversed(value))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return "", "?"  # pragma: no cover - the checking pass found one


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _segment(key: str) -> str:
    return f".{key}" if _PLAIN.fullmatch(key) and len(key) <= _SHOWN else f"[{_quote(key)}]"


def _quote(key: str) -> str:
    return repr(key) if len(key) <= _SHOWN else f"{key[:_SHOWN]!r}..."
