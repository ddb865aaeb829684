"""What every part of the codec shares: the error type, typed decoding with located messages.

msgspec reports ``Expected `str`, got `int` - at `$.metadata.name```; requests get that as
``Pod.metadata.name: expected `str`, got `int```, so a human sees which field is wrong.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

import msgspec
from msgspec import Raw


class WireError(ValueError):
    """The request body is not a valid extender request; the message names the problem."""


T = TypeVar("T")

#: a request body as the server hands it over: bytes, or a view of the buffer it arrived in
Body = bytes | bytearray | memoryview

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


def decode(data: Body | Raw, kind: type[T], where: str) -> T:
    """``data`` decoded as ``kind``; any problem is a :class:`WireError` located under ``where``
    (``"body"`` for the whole request, else a path such as ``"Pod"`` or ``"Nodes.items[3]"``)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise WireError(locate(str(exc), where)) from None
    except msgspec.DecodeError as exc:
        raise WireError(f"{where}: {exc}" if where != "body" else f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep(where) from None


def too_deep(where: str) -> WireError:
    """The error for JSON nested deeper than the decoders can follow.

    msgspec (and the stdlib scanner) recurse once per nesting level and raise RecursionError
    at the interpreter's recursion limit: catching that costs nothing per request, where an
    explicit depth scan of a 7 MB body would cost milliseconds. Kubernetes objects nest
    fewer than 30 levels, so the limit only ever meets hostile or broken input.
    """
    location = "request body" if where == "body" else where
    return WireError(f"{location}: JSON nested too deeply (the limit is about {sys.getrecursionlimit()} levels)")


def locate(message: str, where: str) -> str:
    """``Expected `str`, got `int` - at `$.metadata.name``` -> ``Pod.metadata.name: expected `str`...``."""
    of_key = " - at `key` in `$" in message  # msgspec's form for a bad mapping key
    text, sep, path = message.rpartition(" - at `key` in `$" if of_key else " - at `$")
    if not sep:
        return f"{'request body' if where == 'body' else where}: {message[:1].lower()}{message[1:]}"
    path = path.rstrip("`")
    prefix = "" if where == "body" else where
    location = f"{prefix}{path}".lstrip(".") or ("request body" if where == "body" else where)
    return f"{location}{' (a key)' if of_key else ''}: {text[:1].lower()}{text[1:]}"


def is_null(raw: Raw) -> bool:
    """Whether a captured value is JSON ``null``."""
    return len(raw) == 4 and bytes(raw) == b"null"


def encode_json(value: Any) -> bytes:
    """Plain JSON for the non-protocol endpoints (errors, probes, version)."""
    return _encoder.encode(value)

