"""``GET /openapi.json`` describes the HTTP API faithfully: it is valid OpenAPI 3.1, the recorded
kube-scheduler requests and the server's real answers to them validate against it, and
schemathesis, generating positive and negative requests from it, finds nothing wrong with a
live ``extender serve`` (no 5xx, only documented statuses, content types, headers and
bodies, schema-violating requests rejected, wrong methods answered 405 with Allow)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis

from extender.settings import Settings
from tests.conftest import fixture_id, make_app, request_line, scheduler_fixtures, verb_of
from tests.live_server import running_server

ROOT = Path(__file__).resolve().parents[1]
CLIENT = make_app().test_client()
DOCUMENT: dict[str, Any] = json.loads(CLIENT.get("/openapi.json").data)


def validator(ref: str) -> Any:
    """A validator of one component (``#/components/schemas/X``) of the served document."""
    return jsonschema_rs.Draft202012Validator({"$ref": ref, "components": DOCUMENT["components"]})


def schema_ref(content: dict[str, Any]) -> str:
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref


def response_ref(path: str, method: str, status: int) -> str:
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return schema_ref(response["content"])


def problems(ref: str, value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message[:200]}" for e in validator(ref).iter_errors(value)]


def test_the_document_is_valid_openapi_and_lists_the_whole_api() -> None:
    response = CLIENT.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises if invalid
    assert DOCUMENT["openapi"] == "3.1.0"
    assert sorted((path, method) for path, item in DOCUMENT["paths"].items() for method in item) == [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/readyz", "get"),
        ("/scheduler/bind", "post"),
        ("/scheduler/explain", "post"),
        ("/scheduler/filter", "post"),
        ("/scheduler/preempt", "post"),
        ("/scheduler/prioritize", "post"),
        ("/version", "get"),
    ]
    for verb in ("filter", "prioritize", "preempt", "bind", "explain"):
        responses = DOCUMENT["paths"][f"/scheduler/{verb}"]["post"]["responses"]
        assert sorted(responses) == ["200", "400", "405", "413", "415"]
    assert sorted(DOCUMENT["components"]["responses"]) == ["400", "404", "405", "413", "415"]


@pytest.mark.parametrize(("prefix", "expected"), [("/custom/ext/", "/custom/ext/filter"), ("/", "/filter"), ("", "/filter")])
def test_the_verbs_are_described_under_the_configured_prefix(prefix: str, expected: str) -> None:
    document = json.loads(make_app(None, Settings(url_prefix=prefix)).test_client().get("/openapi.json").data)
    assert expected in document["paths"]
    schemathesis.openapi.from_dict(document).validate()


@pytest.mark.parametrize("path", scheduler_fixtures(), ids=fixture_id)
def test_recorded_requests_and_the_answers_to_them_validate(path: Path) -> None:
    method, target = request_line(path)
    operation = DOCUMENT["paths"][target][method.lower()]
    request = json.loads(path.read_bytes())
    assert problems(schema_ref(operation["requestBody"]["content"]), request) == []
    response = CLIENT.post(target, data=path.read_bytes(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert problems(response_ref(target, "post", 200), json.loads(response.data)) == []


@pytest.mark.parametrize("verb", ["filter", "prioritize", "both"])
@pytest.mark.parametrize("path", [p for p in scheduler_fixtures() if verb_of(p) in ("filter", "prioritize")], ids=fixture_id)
def test_explanations_of_recorded_requests_validate(path: Path, verb: str) -> None:
    response = CLIENT.post(f"/scheduler/explain?verb={verb}", data=path.read_bytes())
    assert response.status_code == 200, response.data
    assert problems(response_ref("/scheduler/explain", "post", 200), json.loads(response.data)) == []


def test_error_answers_validate() -> None:
    cases = [
        (CLIENT.post("/scheduler/filter", data=b"{"), "/scheduler/filter", "post"),
        (CLIENT.get("/scheduler/filter"), "/scheduler/filter", "post"),
        (CLIENT.post("/scheduler/filter", data=b"{}", headers={"Content-Type": "text/plain"}), "/scheduler/filter", "post"),
        (make_app(None, Settings(max_body_bytes=10)).test_client().post("/scheduler/bind", data=b"{" * 11), "/scheduler/bind", "post"),
        (CLIENT.post("/healthz"), "/healthz", "get"),
        (CLIENT.post("/scheduler/explain?verb=bind", data=b"{}"), "/scheduler/explain", "post"),
        (CLIENT.post("/scheduler/explain", data=b"{"), "/scheduler/explain", "post"),
        (CLIENT.delete("/scheduler/explain"), "/scheduler/explain", "post"),
    ]
    for response, path, method in cases:
        assert response.status_code in (400, 405, 413, 415)
        assert problems(response_ref(path, method, response.status_code), json.loads(response.data)) == []
    missing = CLIENT.get("/nope")
    ref = schema_ref(DOCUMENT["components"]["responses"]["404"]["content"])
    assert missing.status_code == 404 and problems(ref, json.loads(missing.data)) == []


def test_the_probes_validate() -> None:
    for path in ("/healthz", "/readyz", "/version", "/openapi.json"):
        response = CLIENT.get(path)
        assert problems(response_ref(path, "get", 200), json.loads(response.data)) == [], path


def test_the_schemas_are_not_vacuous() -> None:
    """A validator that accepted anything would make the tests above pass too."""
    assert problems("#/components/schemas/HostPriorityList", [{"Host": "n", "Score": 11}])
    assert problems("#/components/schemas/HostPriorityList", [{"Host": "n", "Score": 1.5}])
    assert problems("#/components/schemas/ExtenderFilterResult", {"Nodes": None})
    assert problems("#/components/schemas/ExtenderArgs", {"Pod": {"metadata": {}}, "Nodes": None, "NodeNames": None})
    assert problems("#/components/schemas/ExtenderArgs", {"Pod": {"metadata": {"name": 5}}, "NodeNames": []})
    assert problems("#/components/schemas/ExtenderArgs", {"Pod": {"metadata": {}}, "NodeNames": ["n" * 254]})
    assert problems("#/components/schemas/ExtenderArgs", {"Pod": {"metadata": {}}, "Nodes": [{"metadata": {}}]})
    assert problems("#/components/schemas/ExtenderBindingArgs", {"PodName": "p", "PodNamespace": "d", "PodUID": "", "Node": "n"})
    assert problems("#/components/schemas/Error", {"error": "x", "detail": 1})
    assert problems("#/components/schemas/Explanation", {"filter": {"verb": "filter"}, "prioritize": None, "winner": None})


# -- schemathesis against a live server ----------------------------------------------------------

#: what schemathesis checks; positive_data_acceptance is left out: JSON Schema counts 7.0 as an
#: integer, but Go's decoder (and ours, to match it) rejects a float for an integer field
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
]
MAX_EXAMPLES = 50


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``extender serve`` on the example production policy (every built-in rule type)."""
    policy = ROOT / "deploy" / "extender" / "policy.yaml"
    with running_server(tmp_path_factory.mktemp("openapi"), "--policy", str(policy), "--workers", "2") as server:
        yield server.url
        text = server.log_text()
        assert "Traceback" not in text and "internal error" not in text, text[-5000:]
        assert text.count("Booting worker") == 2, "a worker died and was replaced"


def test_schemathesis_finds_nothing_wrong_with_the_live_server(live_server: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", f"{live_server}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--mode", "all",  # positive and negative cases
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "1",
        "--generation-deterministic",  # no example database either
        "--workers", "1",
        "--request-timeout", "10",
        "--no-color",
        "--report", "json",
        "--report-json-path", str(tmp_path / "report.json"),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    report = json.loads((tmp_path / "report.json").read_text())
    cases = report["test_cases"]
    print(f"schemathesis: {cases['generated']} cases over {report['operations']['tested']} operations in {report['running_time']:.1f}s")
    assert report["operations"]["tested"] == 9  # every operation but /openapi.json itself (4 verbs, explain, 3 probes, metrics)
    assert cases["generated"] >= 1000 and cases["with_failures"] == 0 and cases["errored"] == 0
    assert report["failures"] == [] and report["errors"] == []
