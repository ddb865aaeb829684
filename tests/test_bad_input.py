"""Malformed requests get a 4xx with a JSON ``{"error": ...}`` naming the problem, on every verb:
deep nesting, duplicate keys, NaN/Infinity, integers out of range, names too long, invalid
UTF-8, huge strings, non-JSON content types, wrong methods and unknown paths. Never a 5xx.

The Flask test client covers every case on every verb; the live-server tests at the end send
a handful through gunicorn and check that the worker answers a normal request afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.codec.common import WireError
from extender.codec.duplicates import check_unique_keys

from tests.conftest import fixture, make_app
from tests.test_server import free_port, wait_ready

VERBS = ("filter", "prioritize", "preempt", "bind")
NAMES = fixture("kube-scheduler-v1.30", "node-cache", "00001-filter-gpu-1")
POD = json.loads(NAMES)["Pod"]
CLIENT = make_app().test_client()

#: a valid request of each verb, to build bad ones from
VALID: dict[str, dict[str, Any]] = {
    "filter": {"Pod": POD, "Nodes": None, "NodeNames": ["node-a", "node-b"]},
    "prioritize": {"Pod": POD, "Nodes": None, "NodeNames": ["node-a", "node-b"]},
    "preempt": {
        "Pod": POD,
        "NodeNameToVictims": None,
        "NodeNameToMetaVictims": {"node-a": {"Pods": [{"UID": "u-1"}], "NumPDBViolations": 0}},
    },
    "bind": {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "node-a"},
}


def post(verb: str, body: bytes, client: Any = CLIENT, **kwargs: Any) -> Any:
    return client.post(f"/scheduler/{verb}", data=body, **kwargs)


def error_of(response: Any, status: int) -> str:
    """The message of a JSON error response with this status."""
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.mimetype == "application/json"
    body = json.loads(response.data)
    assert list(body) == ["error"] and isinstance(body["error"], str)
    message: str = body["error"]
    return message


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- deep nesting ------------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
TOO_DEEP = "JSON nested too deeply (the limit is about 1000 levels)"


def deep_bodies(verb: str) -> list[bytes]:
    """Deep nesting at every place a request can carry it: the envelope, the Pod, a node,
    inside Nodes.items, victims, and on the lenient (lower-case keys) paths."""
    pod = b'{"metadata":{"name":"p"},"spec":{"affinity":' + DEEP_OBJECTS + b"}}"
    return {
        "filter": [
            b'{"Pod":' + DEEP + b',"NodeNames":[]}',
            b'{"Pod":' + pod + b',"NodeNames":["a"]}',
            b'{"Pod":{"metadata":{}},"Nodes":{"items":[' + DEEP + b"]}}",
            b'{"Pod":{"metadata":{}},"Nodes":{"items":[{"metadata":{"name":"n"},"status":' + DEEP + b"}]}}",
            b'{"pod":{"metadata":{}},"nodes":' + DEEP + b"}",
            b'{"Pod":{"metadata":{}},"NodeNames":["a"],"x":' + DEEP_OBJECTS + b"}",
        ],
        "prioritize": [
            b'{"Pod":' + pod + b',"NodeNames":["a"]}',
            b'{"Pod":{"metadata":{}},"Nodes":{"items":[{"metadata":{"name":"n"},"x":' + DEEP + b"}]}}",
            b'{"pod":{"metadata":{}},"nodeNames":' + DEEP + b"}",
        ],
        "preempt": [
            b'{"Pod":' + pod + b',"NodeNameToMetaVictims":{}}',
            b'{"Pod":{"metadata":{}},"NodeNameToVictims":{"n":{"Pods":[{"spec":' + DEEP + b"}]}}}",
            b'{"Pod":{"metadata":{}},"NodeNameToMetaVictims":{"n":{"Pods":[{"UID":"u","x":' + DEEP + b"}]}}}",
            b'{"pod":{"metadata":{}},"nodeNameToMetaVictims":{"n":{"pods":' + DEEP + b"}}}",
        ],
        "bind": [
            b'{"PodName":"p","PodNamespace":"d","PodUID":"u","Node":"n","x":' + DEEP + b"}",
            b'{"podName":' + DEEP_OBJECTS + b"}",
        ],
    }[verb]


@pytest.mark.parametrize("verb", VERBS)
def test_deep_nesting_is_a_400_naming_the_limit(verb: str) -> None:
    for deep in deep_bodies(verb):
        message = error_of(post(verb, deep), 400)
        assert message.startswith(f"{verb}: ") and message.endswith(TOO_DEEP), message


def test_nesting_kubernetes_objects_use_is_fine() -> None:
    nested: Any = "x"
    for _ in range(100):
        nested = {"k": [nested]}
    pod = {**POD, "spec": {**POD["spec"], "affinity": nested}}
    assert post("filter", body({**VALID["filter"], "Pod": pod})).status_code == 200


def test_invalid_utf8_where_a_large_full_node_filter_does_not_decode_is_still_a_400() -> None:
    # Filter echoes Node objects byte for byte: bytes it does not decode (here an image name)
    # must still be valid UTF-8, or the answer it echoes would be invalid JSON.
    from benchmarks import payloads

    body = payloads.full_nodes(100).body
    at = body.index(b'"names":["') + len(b'"names":["')
    broken = body[:at] + b"\xff" + body[at:]
    for verb in ("filter", "prioritize"):
        response = CLIENT.post(f"/scheduler/{verb}", data=broken, content_type="application/json")
        assert response.status_code == 400, (verb, response.data[:200])
        assert json.loads(response.data)["error"] in (f"{verb}: request body: invalid UTF-8 at byte {at}",
                                                       f"{verb}: request body is not valid JSON: invalid character (byte {at})")


# -- duplicate keys ----------------------------------------------------------------------------


def with_duplicate(verb: str) -> list[tuple[bytes, str]]:
    """(body, message) with a key repeated: in the envelope, the Pod, a node, victims."""
    pod = body(POD)
    dup_pod = pod.replace(b'"name": "gpu-1"', b'"name": "gpu-1", "name": "gpu-2"', 1)
    assert dup_pod != pod
    cases = {
        "filter": [
            (b'{"Pod":' + pod + b',"NodeNames":["a"],"NodeNames":["b"]}', "request body: duplicate key 'NodeNames'"),
            (b'{"Pod":' + dup_pod + b',"NodeNames":["a"]}', "Pod.metadata: duplicate key 'name'"),
            (
                b'{"Pod":' + pod + b',"Nodes":{"items":[{"metadata":{"name":"n","labels":{"a/b":"1","a/b":"2"}}}]}}',
                "Nodes.items[0].metadata.labels: duplicate key 'a/b'",
            ),
            (b'{"pod":' + pod + b',"nodeNames":["a"],"nodeNames":["b"]}', "request body: duplicate key 'nodeNames'"),
            (
                b'{"Pod":' + pod + b',"NodeNames":["a"],"nodenames":["b"]}',
                "request body: duplicate key 'nodenames' (the same as 'NodeNames': envelope keys match case-insensitively)",
            ),
        ],
        "prioritize": [
            (b'{"Pod":' + pod + b',"Nodes":null,"Nodes":null,"NodeNames":["a"]}', "request body: duplicate key 'Nodes'"),
            (b'{"Pod":' + dup_pod + b',"Nodes":null,"NodeNames":["a"]}', "Pod.metadata: duplicate key 'name'"),
            (
                b'{"Pod":' + pod + b',"Nodes":{"items":[{"metadata":{"name":"n"},"spec":{},"spec":{}}]}}',
                "Nodes.items[0]: duplicate key 'spec'",
            ),
        ],
        "preempt": [
            (
                b'{"Pod":' + pod + b',"NodeNameToMetaVictims":{"n":{"Pods":[{"UID":"u","UID":"v"}]}}}',
                "NodeNameToMetaVictims.n.Pods[0]: duplicate key 'UID'",
            ),
            (b'{"Pod":' + dup_pod + b',"NodeNameToMetaVictims":{}}', "Pod.metadata: duplicate key 'name'"),
            (
                b'{"Pod":' + pod + b',"NodeNameToMetaVictims":{"n-1":{},"n-1":{}}}',
                "NodeNameToMetaVictims: duplicate key 'n-1'",
            ),
            (
                b'{"pod":' + pod + b',"POD":' + pod + b',"NodeNameToMetaVictims":{}}',
                "request body: duplicate key 'POD' (the same as 'pod': envelope keys match case-insensitively)",
            ),
        ],
        "bind": [
            (b'{"PodName":"p","PodName":"q","PodNamespace":"d","PodUID":"u","Node":"n"}', "request body: duplicate key 'PodName'"),
            (
                b'{"PodName":"p","PodNamespace":"d","PodUID":"u","Node":"n","node":"m"}',
                "request body: duplicate key 'node' (the same as 'Node': envelope keys match case-insensitively)",
            ),
        ],
    }
    return cases[verb]


@pytest.mark.parametrize("verb", VERBS)
def test_duplicate_keys_are_a_400_naming_the_key_and_where(verb: str) -> None:
    for request, message in with_duplicate(verb):
        assert error_of(post(verb, request), 400) == f"{verb}: {message}"


def test_keys_that_differ_only_in_case_are_distinct_below_the_envelope() -> None:
    labels = {**POD["metadata"].get("labels", {}), "zone": "a", "Zone": "b"}
    pod = {**POD, "metadata": {**POD["metadata"], "labels": labels}}
    assert post("filter", body({**VALID["filter"], "Pod": pod, "x": 1, "X": 2})).status_code == 200


def test_a_compact_names_mode_envelope_is_proven_free_of_duplicates_by_its_length() -> None:
    """The path kube-scheduler's own (compact) names-mode requests take: only the Pod is
    scanned. Anything else in the envelope makes the body longer and takes the full scan."""
    pod = json.dumps(POD, separators=(",", ":")).encode()
    compact = b'{"Pod":' + pod + b',"Nodes":null,"NodeNames":["a","b"]}'
    assert post("filter", compact).status_code == 200
    for sneaky in (
        b'{"Pod":' + pod + b',"Nodes":null,"NodeNames":["a","b"],"NodeNames":["c"]}',
        b'{"Pod":' + pod + b',"NodeNames":["a"],"Nodes":null,"NodeNames":["a","b"]}',
        b'{"Nodes":null,"Pod":' + pod + b',"Pod":' + pod + b',"NodeNames":["a"]}',
    ):
        assert "duplicate key" in error_of(post("filter", sneaky), 400)
    dup_pod = pod.replace(b'"name":"gpu-1"', b'"name":"gpu-1","name":"x"', 1)
    message = error_of(post("prioritize", b'{"Pod":' + dup_pod + b',"Nodes":null,"NodeNames":["a"]}'), 400)
    assert message == "prioritize: Pod.metadata: duplicate key 'name'"


def test_large_full_node_requests_check_the_pod_object() -> None:
    from benchmarks import payloads

    large = payloads.full_nodes(40).body
    assert len(large) > 256 * 1024
    assert post("filter", large).status_code == 200
    dup = large.replace(b'"name":"web-1"', b'"name":"web-1","name":"web-2"', 1)
    assert error_of(post("filter", dup), 400) == "filter: Pod.metadata: duplicate key 'name'"
    assert error_of(post("prioritize", dup), 400) == "prioritize: Pod.metadata: duplicate key 'name'"


def test_a_long_duplicate_key_is_shortened_in_the_message() -> None:
    key = "k" * 10_000
    request = body(VALID["filter"]).replace(b'"Pod": {', b'"Pod": {"' + key.encode() + b'": 1, "' + key.encode() + b'": 2, ', 1)
    message = error_of(post("filter", request), 400)
    assert message == f"filter: Pod: duplicate key {'k' * 64!r}..."


# -- numbers and names out of range ------------------------------------------------------------


def out_of_range(verb: str) -> list[tuple[Any, str]]:
    """(request, message): integers the codec reads beyond their Go type, names too long."""
    huge = 123456789012345678901234567890
    pod_with = lambda **spec: {**POD, "spec": {**POD["spec"], **spec}}  # noqa: E731
    long_name = "n" * 254
    pod_cases = [
        ({"Pod": pod_with(priority=huge)}, "Pod.spec.priority: expected `int` <= 2147483647"),
        ({"Pod": pod_with(priority=2**31)}, "Pod.spec.priority: expected `int` <= 2147483647"),
        ({"Pod": pod_with(priority=-(2**31) - 1)}, "Pod.spec.priority: expected `int` >= -2147483648"),
        (
            {"Pod": pod_with(tolerations=[{"key": "k", "tolerationSeconds": 2**63}])},
            "Pod.spec.tolerations[0].tolerationSeconds: expected `int` <= 9223372036854775807",
        ),
        ({"Pod": {**POD, "metadata": {**POD["metadata"], "name": long_name}}}, "Pod.metadata.name: expected `str` of length <= 253"),
        (
            {"Pod": {**POD, "metadata": {**POD["metadata"], "namespace": "x" * 64}}},
            "Pod.metadata.namespace: expected `str` of length <= 63",
        ),
    ]
    victims = lambda v: {"NodeNameToMetaVictims": {"n": v}}  # noqa: E731
    cases: dict[str, list[tuple[Any, str]]] = {
        "filter": [
            *pod_cases,
            ({"NodeNames": [long_name]}, "NodeNames[0]: expected `str` of length <= 253"),
            (
                {"NodeNames": None, "Nodes": {"items": [{"metadata": {"name": long_name}}]}},
                "Nodes.items[0].metadata.name: expected `str` of length <= 253",
            ),
        ],
        "prioritize": [
            *pod_cases,
            ({"NodeNames": ["a", long_name]}, "NodeNames[1]: expected `str` of length <= 253"),
            (
                {"NodeNames": None, "Nodes": {"items": [{"metadata": {"name": long_name}}]}},
                "Nodes.items[0].metadata.name: expected `str` of length <= 253",
            ),
        ],
        "preempt": [
            *pod_cases,
            (victims({"Pods": [], "NumPDBViolations": 2**63}), "NodeNameToMetaVictims[...].NumPDBViolations: expected `int` <= 9223372036854775807"),
            (victims({"NumPDBViolations": huge}), "NodeNameToMetaVictims[...].NumPDBViolations: expected `int` <= 9223372036854775807"),
            (
                {"NodeNameToMetaVictims": None, "NodeNameToVictims": {"n": {"Pods": [], "NumPDBViolations": -(2**63) - 1}}},
                "NodeNameToVictims[...].NumPDBViolations: expected `int` >= -9223372036854775808",
            ),
            ({"NodeNameToMetaVictims": {long_name: {"Pods": []}}}, "NodeNameToMetaVictims (a key): expected `str` of length <= 253"),
        ],
        "bind": [
            ({"PodName": long_name}, "PodName: expected `str` of length <= 253"),
            ({"Node": long_name}, "Node: expected `str` of length <= 253"),
            ({"PodNamespace": "x" * 64}, "PodNamespace: expected `str` of length <= 63"),
        ],
    }
    return cases[verb]


@pytest.mark.parametrize("verb", VERBS)
def test_numbers_and_names_out_of_range_are_a_400_naming_the_field(verb: str) -> None:
    for change, message in out_of_range(verb):
        request = {**VALID[verb], **change}
        assert error_of(post(verb, body(request)), 400) == f"{verb}: {message}", change
        # the lenient path (lower-case envelope keys) applies the same bounds
        lenient = {key[:1].lower() + key[1:]: value for key, value in request.items()}
        assert error_of(post(verb, body(lenient)), 400) == f"{verb}: {message}", change


def test_the_bounds_themselves_are_accepted() -> None:
    pod = {**POD, "spec": {**POD["spec"], "priority": -(2**31), "tolerations": [{"tolerationSeconds": 2**63 - 1}]}}
    assert post("filter", body({**VALID["filter"], "Pod": pod, "NodeNames": ["n" * 253]})).status_code == 200
    victims = {"n" * 253: {"Pods": [{"UID": "u"}], "NumPDBViolations": 2**63 - 1}}
    response = post("preempt", body({**VALID["preempt"], "NodeNameToMetaVictims": victims}))
    assert response.status_code == 200
    for kept in json.loads(response.data)["NodeNameToMetaVictims"].values():  # if the candidate is kept
        assert kept["NumPDBViolations"] == 2**63 - 1


# -- NaN/Infinity, invalid UTF-8, huge strings -------------------------------------------------


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
def test_nan_and_infinity_are_a_400(verb: str, literal: bytes) -> None:
    """Not JSON (RFC 8259 has no such literals; Python's json module would take them)."""
    request = body(VALID[verb])
    # in a field the codec reads, and in one it skips
    read = {"filter": b'"node-a"', "prioritize": b'"node-a"', "preempt": b'"u-1"', "bind": b'"p"'}[verb]
    skipped = (b'"metadata": {', b'"metadata": {"x": ' + literal + b", ") if verb != "bind" else (b"{", b'{"x": ' + literal + b", ")
    for bad in (request.replace(read, literal, 1), request.replace(*skipped, 1)):
        assert bad != request
        message = error_of(post(verb, bad), 400)
        assert message.startswith(f"{verb}: request body is not valid JSON: JSON is malformed: invalid character"), message


@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt"])
@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" * 5000])
def test_a_number_beyond_any_type_is_a_400_where_the_codec_reads_it(verb: str, number: bytes) -> None:
    pod = {**POD, "spec": {**POD["spec"], "priority": 7}}
    request = body({**VALID[verb], "Pod": pod}).replace(b'"priority": 7', b'"priority": ' + number)
    message = error_of(post(verb, request), 400)
    assert message.startswith(f"{verb}: Pod.spec.priority: "), message


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_is_a_400(verb: str, bad: bytes) -> None:
    request = body(VALID[verb])
    for where in (b'"node-a"', b'"p"', b'"default"'):
        if where in request:
            message = error_of(post(verb, request.replace(where, b'"' + bad + b'"', 1)), 400)
            assert "Invalid UTF-8" in message or "not valid JSON" in message, message
    # outside any string: not JSON at all
    assert "not valid JSON" in error_of(post(verb, bad + request), 400)


@pytest.mark.parametrize("verb", VERBS)
def test_huge_strings_within_the_body_limit_never_get_a_5xx(verb: str) -> None:
    huge = "x" * 8_000_000
    request = VALID[verb]
    cases = [
        {**request, "Pod": {**POD, "metadata": {**POD["metadata"], "annotations": {"a": huge}}}},
        {**request, "Pod": {**POD, "metadata": {**POD["metadata"], "labels": {huge: "v"}}}},
        {**request, huge: 1},
        {**request, "PodUID": huge} if verb == "bind" else {**request, "NodeNames": [huge]},
    ]
    for case in cases:
        response = post(verb, body(case))
        assert response.status_code in (200, 400), response.data[:200]
        assert response.mimetype == "application/json"
        assert len(response.data) < 2000 or response.status_code == 200, "an error message stays short"


# -- content types, methods, paths ---------------------------------------------------------------


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "text/json",
    ],
)
def test_a_content_type_that_is_not_json_is_a_415_naming_the_accepted_one(verb: str, content_type: str) -> None:
    response = post(verb, body(VALID[verb]), headers={"Content-Type": content_type})
    message = error_of(response, 415)
    assert message == f"{verb}: unsupported Content-Type {content_type!r}: send application/json (UTF-8)"


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8", None])
def test_json_with_or_without_a_charset_or_no_content_type_is_accepted(verb: str, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    assert post(verb, body(VALID[verb]), headers=headers).status_code == 200


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD", "FOO"])
def test_every_other_method_on_a_verb_is_a_405_allowing_post(verb: str, method: str) -> None:
    response = CLIENT.open(f"/scheduler/{verb}", method=method, data=body(VALID[verb]))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    if method != "HEAD":  # HEAD answers carry no body
        assert error_of(response, 405).startswith((f"{verb} takes POST", f"{method} is not allowed"))


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/version", "/openapi.json"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "FOO"])
def test_every_other_method_on_a_probe_is_a_405_allowing_get(path: str, method: str) -> None:
    response = CLIENT.open(path, method=method, data=b"{}", headers={"Content-Type": "application/json"})
    assert error_of(response, 405) == f"{method} is not allowed on {path}"
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("verb", ["filterx", "Filter", "predicates/gpu", "filter/", "bind/extra", ""])
def test_an_unknown_verb_is_a_404_listing_the_verbs(method: str, verb: str) -> None:
    response = CLIENT.open(f"/scheduler/{verb}", method=method, data=b"{}")
    message = error_of(response, 404)
    assert message in (
        f"unknown verb {verb!r}: this extender serves filter, prioritize, preempt, bind",
        f"no such endpoint: {method} /scheduler/{verb}",
    )


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/filter", "/scheduler", "/schedulerx/filter", "/healthz/x", "/%ff"])
def test_an_unknown_path_is_a_404(method: str, path: str) -> None:
    response = CLIENT.open(path, method=method, data=b"{}")
    assert error_of(response, 404).startswith(f"no such endpoint: {method} /")


# -- through a live server: the worker survives every one of them -------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``extender serve`` (2 workers) and its log."""
    log = tmp_path_factory.mktemp("bad-input") / "server.log"
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "extender", "serve", "--port", str(port), "--workers", "2", "--threads", "4"],
            stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, log
    finally:
        process.kill()
        process.wait()


def live_cases() -> list[tuple[str, str, bytes, dict[str, str], int]]:
    """(method, verb, body, headers, status) for a handful of the cases above."""
    as_json = {"Content-Type": "application/json"}
    return [
        ("POST", "filter", deep_bodies("filter")[0], as_json, 400),
        ("POST", "preempt", deep_bodies("preempt")[0], as_json, 400),
        ("POST", "prioritize", with_duplicate("prioritize")[0][0], as_json, 400),
        ("POST", "bind", with_duplicate("bind")[0][0], as_json, 400),
        ("POST", "filter", body({**VALID["filter"], "Pod": {**POD, "spec": {"priority": 10**29}}}), as_json, 400),
        ("POST", "bind", body(VALID["bind"]).replace(b'"p"', b'"\xff"'), as_json, 400),
        ("POST", "filter", body(VALID["filter"]).replace(b'"node-a"', b"NaN"), as_json, 400),
        ("POST", "preempt", body(VALID["preempt"]), {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("POST", "filter", body({**VALID["filter"], "x": "y" * 900_000}), as_json, 200),
        ("GET", "filter", b"", {}, 405),
        ("DELETE", "bind", b"", {}, 405),
        ("POST", "nope", b"{}", as_json, 404),
    ]


def test_the_live_server_answers_bad_input_with_json_4xx_and_keeps_serving(live: tuple[str, Path]) -> None:
    url, log = live
    session = requests.Session()  # one keep-alive connection, as kube-scheduler uses
    normal = body(VALID["filter"])
    for method, verb, data, headers, status in live_cases():
        response = session.request(method, f"{url}/scheduler/{verb}", data=data, headers=headers, timeout=10)
        assert response.status_code == status, (verb, response.status_code, response.text[:300])
        assert response.headers["Content-Type"] == "application/json"
        if status != 200:
            assert list(response.json()) == ["error"]
        after = session.post(f"{url}/scheduler/filter", data=normal, headers={"Content-Type": "application/json"}, timeout=10)
        assert after.status_code == 200 and after.json()["Error"] == ""
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    # Each worker logs its own boot: on a slow machine the second may not have yet (the
    # server is ready with one), so wait for it; a worker replaced after dying makes it 3.
    deadline = time.monotonic() + 30
    while (text := log.read_text()).count("Booting worker") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    text = log.read_text()
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert text.count("Booting worker") == 2, "no worker died and was replaced"


# -- duplicate keys in compact text (the fast check) -------------------------------------------


class _Pairs(list):  # type: ignore[type-arg]
    """An object as its key/value pairs, keys possibly repeated."""


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(st.tuples(st.sampled_from(["a", "b", "B", "é", "<"]), inner), max_size=4).map(_Pairs),
    max_leaves=25,
)


def _compact(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_compact(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _repeats_a_key(value: Any) -> bool:
    if isinstance(value, _Pairs):
        keys = [k for k, _ in value]
        return len(set(keys)) < len(keys) or any(_repeats_a_key(v) for _, v in value)
    return isinstance(value, list) and any(_repeats_a_key(v) for v in value)


@settings(max_examples=300, deadline=None)
@given(value=_values)
def test_a_repeated_key_is_found_in_compact_text_too(value: Any) -> None:
    # Compact text is what kube-scheduler sends, and what the fast check (re-encoding) takes.
    text = _compact(value).encode()
    if _repeats_a_key(value):
        with pytest.raises(WireError, match="duplicate key"):
            check_unique_keys(text, "body")
    else:
        check_unique_keys(text, "body")
