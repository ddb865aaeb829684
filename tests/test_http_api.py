"""The HTTP layer: routing, prefixes, probes, and clear 4xx JSON errors for bad input (more in
test_bad_input.py; generated input in test_fuzz.py)."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest

from extender.settings import Settings
from extender.web.body import read_body
from tests.conftest import fixture, make_app

WEB = fixture("kube-scheduler-v1.30", "full-nodes", "00001-filter-web-1")
POD = json.loads(WEB)["Pod"]


def error_of(response: Any) -> str:
    assert response.mimetype == "application/json"
    body = json.loads(response.data)
    assert list(body) == ["error"]
    message: str = body["error"]
    return message


@pytest.mark.parametrize(
    ("verb", "body", "message"),
    [
        ("filter", b"{", "filter: request body is not valid JSON: Input data was truncated"),
        ("filter", b"", "filter: request body is not valid JSON: Input data was truncated"),
        ("filter", b"[]", "filter: request body: expected `object`, got `array`"),
        ("filter", b'{"Nodes": null, "NodeNames": []}', "filter: Pod: required (the pod being scheduled)"),
        ("prioritize", b'{"Pod": null, "NodeNames": []}', "prioritize: Pod: must be a Pod object, got null"),
        ("filter", b'{"Pod": "web-1", "NodeNames": []}', "filter: Pod: expected `object`, got `str`"),
        ("filter", b'{"Pod": {"metadata": {"name": 7}}, "NodeNames": []}', "filter: Pod.metadata.name: expected `str`, got `int`"),
        ("filter", b'{"Pod": {"metadata": {}}}', "filter: Nodes or NodeNames: one of them must be set (both are missing or null)"),
        ("filter", b'{"Pod": {"metadata": {}}, "NodeNames": "n1"}', "filter: NodeNames: expected `array | null`, got `str`"),
        ("filter", b'{"Pod": {"metadata": {}}, "Nodes": {"items": [{"metadata": {}}]}}', "filter: Nodes.items[0].metadata.name: required"),
        (
            "filter",
            b'{"Pod": {"metadata": {}}, "Nodes": {"items": [{"metadata": {"name": "n", "labels": {"a": 1}}}]}}',
            "filter: Nodes.items[0].metadata.labels[...]: expected `str`, got `int`",
        ),
        ("preempt", b'{"Pod": {"metadata": {}}}', "preempt: NodeNameToVictims or NodeNameToMetaVictims: one of them must be set (both are missing or null)"),
        ("preempt", b'{"Pod": {"metadata": {}}, "NodeNameToMetaVictims": {"n": {"Pods": [{"UID": 5}]}}}', "preempt: NodeNameToMetaVictims[...].Pods[0].UID: expected `str`, got `int`"),
        ("bind", b"{}", "bind: PodName, PodNamespace, PodUID, Node: required"),
        ("bind", b'{"PodName": "p", "PodNamespace": "d", "PodUID": "u", "Node": 3}', "bind: Node: expected `str`, got `int`"),
    ],
)
def test_bad_requests_get_400_with_a_message_naming_the_problem(verb: str, body: bytes, message: str) -> None:
    response = make_app().test_client().post(f"/scheduler/{verb}", data=body)
    assert response.status_code == 400
    assert error_of(response) == message


def test_unknown_verb_is_404_json() -> None:
    response = make_app().test_client().post("/scheduler/predicates/gpu", data=b"{}")
    assert response.status_code == 404
    assert error_of(response) == "unknown verb 'predicates/gpu': this extender serves filter, prioritize, preempt, bind"


def test_unknown_path_is_404_json() -> None:
    response = make_app().test_client().get("/nope")
    assert response.status_code == 404
    assert error_of(response) == "no such endpoint: GET /nope"


def test_get_on_a_verb_is_405_json() -> None:
    response = make_app().test_client().get("/scheduler/filter")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "filter takes POST" in error_of(response)


def test_body_over_the_limit_is_413_json_before_it_is_read() -> None:
    app = make_app(None, Settings(max_body_bytes=4096))
    response = app.test_client().post("/scheduler/filter", data=WEB)
    assert response.status_code == 413
    assert error_of(response) == (
        f"request body too large ({len(WEB)} bytes): the limit is 4096 bytes "
        "(--max-body-bytes / EXTENDER_MAX_BODY_BYTES)"
    )


def test_humans_may_use_camel_or_lower_case_envelope_keys() -> None:
    client = make_app(None, Settings(unknown_nodes="pass", preempt_unknown_nodes="keep")).test_client()
    for key_pod, key_names in (("pod", "nodeNames"), ("POD", "nodenames")):
        body = json.dumps({key_pod: POD, key_names: ["n1", "n2"]}).encode()
        reply = json.loads(client.post("/scheduler/filter", data=body).data)
        assert reply["NodeNames"] == ["n1", "n2"]
    nodes = json.loads(WEB)["Nodes"]
    reply = json.loads(client.post("/scheduler/prioritize", data=json.dumps({"pod": POD, "nodes": nodes})).data)
    assert len(reply) == 8
    meta = {"pod": POD, "nodeNameToMetaVictims": {"n1": {"pods": [{"uid": "u1"}], "numPDBViolations": 1}}}
    reply = json.loads(client.post("/scheduler/preempt", data=json.dumps(meta)).data)
    assert reply == {"NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": "u1"}], "NumPDBViolations": 1}}}
    bind = {"podName": "p", "podNamespace": "default", "podUID": "u", "node": "n1"}
    assert client.post("/scheduler/bind", data=json.dumps(bind)).status_code == 200


def test_a_bare_list_of_nodes_is_accepted_too() -> None:
    nodes = json.loads(WEB)["Nodes"]["items"]
    reply = json.loads(make_app().test_client().post("/scheduler/filter", data=json.dumps({"Pod": POD, "Nodes": nodes})).data)
    assert reply["Nodes"]["items"] == nodes


def test_content_type_is_not_required() -> None:
    # Hand-written clients may send none; one that is present must be JSON (test_bad_input.py).
    response = make_app().test_client().post("/scheduler/filter", data=WEB)
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 200


@pytest.mark.parametrize(("prefix", "path"), [("/", "/filter"), ("custom/ext/", "/custom/ext/filter"), ("", "/filter")])
def test_url_prefix_is_configurable(prefix: str, path: str) -> None:
    client = make_app(None, Settings(url_prefix=prefix)).test_client()
    assert client.post(path, data=WEB).status_code == 200
    assert client.post("/scheduler/filter", data=WEB).status_code == 404


def test_probes_and_version() -> None:
    client = make_app().test_client()
    assert json.loads(client.get("/healthz").data) == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    version = json.loads(client.get("/version").data)
    assert version["policy"]["source"] == "<embedded default policy>"
    assert [p["name"] for p in version["policy"]["predicates"]] == ["node-condition", "node-maintenance"]
    assert version["policy"]["priorities"] == []  # node-metadata is disabled in the default policy
    assert version["policy"]["bind"] is False


def test_readyz_reports_not_ready_with_503() -> None:
    from extender.web import create_app
    from extender.policy import load_policy

    app = create_app(Settings(), policy=load_policy(), readiness=lambda: (False, "node cache not synced"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert json.loads(response.data) == {"status": "not ready", "detail": "node cache not synced"}


def test_an_unexpected_exception_is_a_json_500_not_a_dead_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    service = app.extensions["extender.service"]
    monkeypatch.setattr(service, "filter", lambda body: 1 / 0)
    response = app.test_client().post("/scheduler/filter", data=WEB)
    assert response.status_code == 500
    assert error_of(response) == "internal error: ZeroDivisionError; see the extender's log"
    assert app.test_client().get("/healthz").status_code == 200


def test_read_body_takes_a_received_request_s_body_without_a_copy() -> None:
    from flask import Flask, request
    from gunicorn.http.body import Body, LengthReader

    from extender.serving.received import ReceivedRequest

    payload = bytearray(WEB * 20)
    unreader = ReceivedRequest(b"POST /scheduler/filter HTTP/1.1\r\n\r\n", memoryview(payload))
    assert unreader.read() == b"POST /scheduler/filter HTTP/1.1\r\n\r\n"  # what the parser reads
    reader = LengthReader(unreader, len(payload))
    environ = {"wsgi.input": Body(reader), "CONTENT_LENGTH": str(len(payload)), "REQUEST_METHOD": "POST"}
    with Flask(__name__).test_request_context(environ_overrides=environ):
        body = read_body(request, len(payload))
    assert isinstance(body, memoryview) and body.obj is payload, "the body is the buffer it arrived in"
    assert reader.length == 0, "gunicorn must see the body as consumed"
    assert unreader.read() == b"", "nothing of the connection's next request is in a received request"


def test_read_body_reads_the_rest_from_gunicorns_socket_under_other_workers() -> None:
    import socket
    import threading

    from flask import Flask, request
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    payload = WEB * 20
    next_request = b"POST /scheduler/filter HTTP/1.1\r\n"
    server, client = socket.socketpair()
    unreader = SocketUnreader(server)
    unreader.unread(payload[:1000])  # what gunicorn read past the headers
    reader = LengthReader(unreader, len(payload))
    sender = threading.Thread(target=client.sendall, args=(payload[1000:] + next_request,))
    sender.start()
    environ = {"wsgi.input": Body(reader), "CONTENT_LENGTH": str(len(payload)), "REQUEST_METHOD": "POST"}
    with Flask(__name__).test_request_context(environ_overrides=environ):
        body = read_body(request, len(payload))
    sender.join()
    assert body == payload
    assert reader.length == 0, "gunicorn must see the body as consumed"
    assert unreader.read(len(next_request)) == next_request, "the next request's bytes are left for gunicorn"
    client.close()
    server.close()


def test_read_body_gives_back_pipelined_bytes_it_already_holds() -> None:
    import socket

    from flask import Flask, request
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    server, client = socket.socketpair()
    unreader = SocketUnreader(server)
    unreader.unread(b'{"a": 1}GET /healthz HTTP/1.1\r\n')
    reader = LengthReader(unreader, 8)
    environ = {"wsgi.input": Body(reader), "CONTENT_LENGTH": "8", "REQUEST_METHOD": "POST"}
    with Flask(__name__).test_request_context(environ_overrides=environ):
        assert read_body(request, 100) == b'{"a": 1}'
    assert unreader.read(8) == b"GET /hea"
    client.close()
    server.close()


def test_read_body_uses_gunicorns_length_reader_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import IterUnreader

    payload = WEB * 20
    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    reader = LengthReader(IterUnreader(iter(chunks)), len(payload))
    calls: list[int] = []
    original = LengthReader.read

    def spy(self: LengthReader, size: int) -> bytes:
        calls.append(size)
        return original(self, size)

    monkeypatch.setattr(LengthReader, "read", spy)
    environ = {"wsgi.input": Body(reader), "CONTENT_LENGTH": str(len(payload)), "REQUEST_METHOD": "POST"}
    with Flask(__name__).test_request_context(environ_overrides=environ):
        from flask import request

        assert read_body(request, len(payload)) == payload
    assert calls == [len(payload)]


def test_read_body_rejects_a_body_shorter_than_its_content_length() -> None:
    from flask import Flask, request
    from werkzeug.exceptions import BadRequest

    environ = {"wsgi.input": BytesIO(b"{}"), "CONTENT_LENGTH": "10", "REQUEST_METHOD": "POST"}
    with Flask(__name__).test_request_context(environ_overrides=environ):
        with pytest.raises(BadRequest, match="ended after 2 of 10 bytes"):
            read_body(request, 100)
