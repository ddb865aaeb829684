"""Malformed requests get a 4xx with a JSON ``{"error": ...}`` naming the problem, on every verb:
deep nesting, duplicate keys, NaN/Infinity, integers out of range, names too long, invalid
UTF-8, huge strings, non-JSON content types, wrong methods and unknown paths. Never a 5xx.

The Flask test client covers every case on every verb; the live-server tests at the end send
a handful through gunicorn and check that the worker answers a normal request afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import fixture, make_app

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
