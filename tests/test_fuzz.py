"""Generated bad input (hypothesis): the codec raises only WireError, the HTTP layer answers only
200 or a JSON 400, and a repeated key is always reported, never silently resolved.

Bodies are (i) arbitrary bytes, JSON-ish token soup and arbitrary JSON values, and (ii) the
recorded kube-scheduler requests with one mutation at a random place: a key deleted,
duplicated or re-cased, a value swapped for another JSON type, replaced by deep nesting, a
huge integer, a NaN/Infinity literal, invalid UTF-8 or a huge string. Every body goes
through every public decode function (kube_scheduler's, objects.decode_pod/decode_node).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.codec import kube_scheduler as wire
from extender.codec import objects
from extender.codec.common import WireError
from extender.codec.duplicates import FULL_NODE_CHECK_BYTES
from extender.settings import Settings
from tests.conftest import make_app, scheduler_fixtures

# -- bodies as trees that can hold what JSON cannot: repeated keys and raw bytes -------------------


class Obj(list[tuple[str, Any]]):
    """A JSON object as its pairs, so a key may appear twice."""


class Text(bytes):
    """Raw bytes written as they are (invalid UTF-8, NaN, deep nesting...)."""


def tree(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj((k, tree(v)) for k, v in value.items())
    if isinstance(value, list):
        return [tree(v) for v in value]
    return value


def dump(node: Any, compact: bool) -> bytes:
    comma, colon = (b",", b":") if compact else (b", ", b": ")
    if isinstance(node, Text):
        return bytes(node)
    if isinstance(node, Obj):
        return b"{" + comma.join(json.dumps(k).encode() + colon + dump(v, compact) for k, v in node) + b"}"
    if isinstance(node, list):
        return b"[" + comma.join(dump(v, compact) for v in node) + b"]"
    return json.dumps(node).encode()


RECORDED = [tree(json.loads(path.read_bytes())) for path in scheduler_fixtures()]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "web-1", "node-00001", "default", "Ready", "True"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
envelope_keys = st.sampled_from(
    ["Pod", "Nodes", "NodeNames", "NodeNameToVictims", "NodeNameToMetaVictims", "PodName", "PodNamespace",
     "PodUID", "Node", "items", "metadata", "pod", "nodenames", "Pods", "UID", "NumPDBViolations"]
)
tokens = st.lists(
    st.sampled_from(
        [b"{", b"}", b"[", b"]", b":", b",", b'"Pod"', b'"NodeNames"', b'"metadata"', b'"a"', b"null", b"true",
         b"0", b"-1", b"1e999", b"NaN", b"Infinity", b'"\xff"', b'"\\ud800"', b" ", b'"', b"\\"]
    ),
    max_size=40,
).map(b"".join)

DEEP = [b"[" * n + b"]" * n for n in (500, 2000, 100_000)] + [b'{"a":' * n + b"0" + b"}" * n for n in (999, 50_000)]
HUGE_INTS = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]
LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 5000, b"01", b"1.", b"+1"]
BAD_UTF8 = [b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b'"a\xf8\x88\x80\x80\x80"', b'"\\ud800"', b'"\x00"']


@st.composite
def replacement(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["json", "deep", "int", "literal", "utf8", "huge"]))
    if kind == "json":
        return tree(draw(json_values))
    if kind == "deep":
        return Text(draw(st.sampled_from(DEEP)))
    if kind == "int":
        return draw(st.sampled_from(HUGE_INTS))
    if kind == "literal":
        return Text(draw(st.sampled_from(LITERALS)))
    if kind == "utf8":
        return Text(draw(st.sampled_from(BAD_UTF8)))
    return "x" * draw(st.sampled_from([254, 70_000, 2_000_000]))


def copy(node: Any) -> Any:
    if isinstance(node, Obj):
        return Obj((k, copy(v)) for k, v in node)
    if isinstance(node, list):
        return [copy(v) for v in node]
    return node


@st.composite
def mutated(draw: st.DrawFn, duplicate_only: bool = False) -> tuple[bytes, bool, bool]:
    """A recorded request with one mutation at a random place; (body, whether a key was
    repeated, whether that was inside the Pod object)."""
    root = copy(draw(st.sampled_from(RECORDED)))
    node = root
    top_key = None  # the envelope key the walk went down, if any
    for step in range(draw(st.integers(0, 12))):  # walk down to a random container
        children = list(node) if isinstance(node, Obj) else [(None, v) for v in node] if isinstance(node, list) else []
        containers = [(k, c) for k, c in children if isinstance(c, (Obj, list)) and c]
        if not containers:
            break
        key, node = draw(st.sampled_from(containers))
        if step == 0:
            top_key = key
    repeated = False
    if isinstance(node, Obj) and node:
        index = draw(st.integers(0, len(node) - 1))
        key, value = node[index]
        operation = "duplicate" if duplicate_only else draw(st.sampled_from(["delete", "duplicate", "recase", "replace"]))
        if operation == "delete":
            del node[index]
        elif operation == "duplicate":
            node.insert(draw(st.integers(0, len(node))), (key, copy(value)))
            repeated = True
        elif operation == "recase":
            node[index] = (draw(st.sampled_from([key.lower(), key.upper(), key.swapcase()])), value)
        else:
            node[index] = (key, draw(replacement()))
    elif isinstance(node, list) and node and not duplicate_only:
        index = draw(st.integers(0, len(node) - 1))
        if draw(st.booleans()):
            del node[index]
        else:
            node[index] = draw(replacement())
    return dump(root, compact=draw(st.booleans())), repeated, top_key is not None and top_key.lower() == "pod"


bodies = (
    st.binary(max_size=64)
    | tokens
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(envelope_keys, json_values, max_size=4).map(lambda v: json.dumps(v).encode())
    | mutated().map(lambda case: case[0])
)


# -- the codec -----------------------------------------------------------------------------------


def _full_node_views(body: bytes) -> object:
    args = wire.decode_extender_args(body)
    return wire.decode_node_views(body, args) if args.full_nodes else args


DECODERS: dict[str, Callable[[bytes], object]] = {
    "decode_extender_args": wire.decode_extender_args,
    "decode_node_views": _full_node_views,
    "decode_scoring_args": wire.decode_scoring_args,
    "decode_preemption_args": wire.decode_preemption_args,
    "decode_binding_args": wire.decode_binding_args,
    "objects.decode_pod": objects.decode_pod,
    "objects.decode_node": objects.decode_node,
}
CODEC_EXAMPLES = 1000


def decode_all(body: bytes) -> dict[str, str]:
    """Each decoder's outcome: "ok" or the WireError message; any other exception escapes."""
    outcomes = {}
    for name, decoder in DECODERS.items():
        try:
            decoder(body)
            outcomes[name] = "ok"
        except WireError as exc:
            message = str(exc)
            assert message and len(message) < 2000, (name, message[:300])
            outcomes[name] = message
    return outcomes


@settings(max_examples=CODEC_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies)
def test_the_codec_raises_only_wire_error(body: bytes) -> None:
    decode_all(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated(duplicate_only=True))
def test_a_repeated_key_is_always_reported(case: tuple[bytes, bool, bool]) -> None:
    """A key repeated (with the same value: nothing else is wrong) must be named, compact body
    or not: anywhere in the recorded names-mode, preempt and bind requests; in the Pod of the
    recorded full-node requests, which are over FULL_NODE_CHECK_BYTES (their Node objects are
    echoed as received, unchecked)."""
    body, repeated, in_pod = case
    outcomes = decode_all(body)
    full_nodes = b'"items"' in body and len(body) > FULL_NODE_CHECK_BYTES
    if repeated and (in_pod or not full_nodes):
        for name in ("decode_extender_args", "decode_scoring_args", "decode_preemption_args", "decode_binding_args"):
            # the decoder of the fixture's own verb reports the duplicate; the others may
            # first find the body is not their kind of request
            if outcomes[name] != "ok":
                continue
            raise AssertionError(f"{name} accepted a repeated key")
        assert any("duplicate key" in message for message in outcomes.values()), outcomes


# -- the HTTP layer ------------------------------------------------------------------------------

FUZZ_CLIENT = make_app(None, Settings(unknown_nodes="pass")).test_client()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(verb=st.sampled_from(["filter", "prioritize", "preempt", "bind"]), body=bodies)
def test_no_input_gets_a_5xx(verb: str, body: bytes) -> None:
    response = FUZZ_CLIENT.post(f"/scheduler/{verb}", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), (response.status_code, response.data[:300])
    assert response.mimetype == "application/json"
    # parse_int=str: a filter echoes node bytes as received, numbers of any length included
    reply = json.loads(response.data, parse_int=str)
    if response.status_code == 400:
        assert list(reply) == ["error"] and reply["error"].startswith(f"{verb}: ")


def test_no_decode_function_of_the_codec_lets_a_recursion_error_out() -> None:
    """Including the API server side: a hostile or broken response is a WireError (or, for
    decode_status, "not a Status"), never a RecursionError."""
    from extender.codec import kube_api

    deep = b'{"a":' * 100_000 + b"0" + b"}" * 100_000
    bodies = [deep, b"[" * 100_000 + b"]" * 100_000, b'{"kind":"Status","details":' + deep + b"}"]
    for name in sorted(dir(kube_api)):
        function = getattr(kube_api, name)
        if name.startswith("decode_") and callable(function):
            for body in bodies:
                try:
                    outcome = function(body)
                except WireError:
                    continue
                assert name == "decode_status" and outcome is None, name
    for body in bodies:
        decode_all(body)
