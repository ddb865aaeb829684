"""``extender explain`` and ``POST {prefix}/explain``: the decision of every recorded request,
explained node by node, agrees with what the service itself answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from extender.cli import main
from extender.kube.stores import NodeStore
from extender.policy import load_policy_text
from extender.service import ExtenderService
from extender.web import create_app
from tests.conftest import FIXTURES, fixture_id, load_json, scheduler_fixtures, verb_of
from tests.live_server import running_server

# The recorded cluster: zone-a = node-00000, -00003, -00006; node-pool gpu on some nodes,
# instance types m5.xlarge (1, 7), r5.2xlarge (0, 2, 3, 4), c5.4xlarge (5, 6). Every rule
# type here rejects or scores some recorded node for some recorded pod.
POLICY = """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
- type: node-selector-policy
  params:
    mappings:
    - name: databases
      namespaces: [default]
      podSelector: {matchLabels: {app: db}}
      nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}]}]
    - name: gpu
      namespaces: [ml-training]
      nodeSelectorTerms: [{matchExpressions: [{key: node-pool, operator: In, values: [gpu]}]}]
      exclusive: true
    unmatchedPods: allow
- name: zone-c-trial
  type: node-selector-policy
  mode: shadow
  params:
    mappings:
    - name: zone-c
      namespaces: [default]
      nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [zone-c]}]}]
priorities:
- type: node-cost
  weight: 2
  params:
    prices:
      m5.xlarge: {on-demand: 0.192}
      r5.2xlarge: {on-demand: 0.504}
      c5.4xlarge: {on-demand: 0.680}
- type: node-metadata
  params: {source: creationTimestamp, strategy: newest}
"""
RULES = {
    "filter": ["node-condition", "node-selector-policy", "zone-c-trial"],
    "prioritize": ["node-cost", "node-metadata"],
}
EXPLAINED = [p for p in scheduler_fixtures() if verb_of(p) in ("filter", "prioritize")]


def nodes_file(path: Path) -> Path:
    """The recorded cluster's 8 Node objects: the full-node filter request of the same version."""
    return FIXTURES / path.parts[-3] / "full-nodes" / "00001-filter-web-1.request.json"


def node_store(path: Path) -> NodeStore:
    store = NodeStore()
    views = [NodeStore.decode(raw)[1] for raw in _raw_items(nodes_file(path))]
    store.replace({view.name: view for view in views if view is not None})
    return store


def _raw_items(path: Path) -> list[Any]:
    from extender.codec.kube_api import decode_list

    return list(decode_list(json.dumps(load_json(path.read_bytes())["Nodes"]).encode()).items)


def service_client(path: Path) -> FlaskClient:
    """The service as a server answers ``path``: names mode with a node cache of the cluster."""
    names_mode = path.parts[-2] == "node-cache"
    service = ExtenderService(load_policy_text(POLICY), nodes=node_store(path) if names_mode else None)
    return create_app(service=service).test_client()


def explain_cli(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    nodes = ["--nodes", str(nodes_file(path))] if path.parts[-2] == "node-cache" else []
    assert main(["explain", "--policy", str(policy), *nodes, *extra, str(path)]) == 0
    return capsys.readouterr().out


def table_rows(output: str, rules: list[str]) -> dict[str, list[str]]:
    """The table's rows by node name: the cells after the name, split on the column gaps."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NODE "))
    for rule in rules:
        assert rule in lines[header], f"no column for {rule}"
    rows = {}
    for line in lines[header + 1 :]:
        if not line.startswith("node-"):
            break
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("path", EXPLAINED, ids=fixture_id)
def test_explain_prints_the_answer_the_service_gives(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verb = verb_of(path)
    request = load_json(path.read_bytes())
    names = request["NodeNames"] or [n["metadata"]["name"] for n in request["Nodes"]["items"]]
    reply = json.loads(service_client(path).post(f"/scheduler/{verb}", data=path.read_bytes()).data)
    output = explain_cli(path, tmp_path, capsys)
    rows = table_rows(output, RULES[verb])
    assert sorted(rows) == sorted(names), "every node is a row"
    if verb == "filter":
        rejected = {**reply["FailedNodes"], **reply["FailedAndUnresolvableNodes"]}
        answers = {name: cells[-1] for name, cells in rows.items()}
        assert {n for n, a in answers.items() if a == "passed"} == set(names) - set(rejected)
        assert {n for n, a in answers.items() if a == "unresolvable"} == set(reply["FailedAndUnresolvableNodes"])
        assert {n for n, a in answers.items() if a == "failed"} == set(reply["FailedNodes"])
        for name, reason in rejected.items():  # each rejection in full, with its rule, under the table
            assert any(reason in line and name in line for line in output.splitlines() if line.startswith("  ")), name
    else:
        scores = {h["Host"]: h["Score"] for h in reply}
        assert {name: int(cells[-2]) for name, cells in rows.items()} == scores
        winner = next(h["Host"] for h in reply if h["Score"] == max(scores.values()))
        assert f"winner: {winner} (score {scores[winner]}" in output


@pytest.mark.parametrize("path", EXPLAINED, ids=fixture_id)
def test_explain_json_is_the_record_with_every_node_and_rule(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verb = verb_of(path)
    record = json.loads(explain_cli(path, tmp_path, capsys, "--json"))
    assert record["verb"] == verb and record["outcome"] == "answered"
    table = record["table"]
    assert table["rules"] == RULES[verb] and table["truncated"] == 0
    assert len(table["rows"]) == record["nodes"]
    cells = "verdicts" if verb == "filter" else "raw"
    assert all(sorted(row[cells]) == sorted(RULES[verb]) for row in table["rows"]), "every rule on every node"


def test_the_recorded_db_pod_is_explained_rule_by_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00005-filter-db-1.request.json"
    record = json.loads(explain_cli(path, tmp_path, capsys, "--json"))
    assert [(g["rule"], g["reason"], g["count"], g["nodes"]) for g in record["rejected"]] == [
        ("node-selector-policy", "node(s) not in node pool 'databases'", 3, ["node-00001", "node-00004", "node-00007"]),
        ("node-selector-policy", "node(s) reserved for node pool 'gpu'", 2, ["node-00003", "node-00006"]),
    ]
    assert record["passed"] == 1
    assert record["shadow"] == [{"rule": "zone-c-trial", "wouldReject": 6}], "db-1's own affinity keeps zone-c away"
    # every predicate is evaluated, not only up to the first rejection: the shadow rule too
    verdicts = {row["node"]: row["verdicts"] for row in record["table"]["rows"]}
    assert verdicts["node-00001"]["node-condition"] == "pass"
    assert all(v["zone-c-trial"] != "n/a" for v in verdicts.values())


def test_without_nodes_every_name_is_unknown_as_a_server_without_a_cache_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = FIXTURES / "kube-scheduler-v1.24" / "node-cache" / "00001-filter-gpu-1.request.json"
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert main(["explain", "--policy", str(tmp_path / "policy.yaml"), str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["passed"] == 0 and record["unknown"] == 8
    assert [g["rule"] for g in record["rejected"]] == ["extender:unknown-node"]


def test_explain_reads_stdin_and_explains_both_verbs_by_default(tmp_path: Path) -> None:
    path = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00005-filter-db-1.request.json"
    (tmp_path / "policy.yaml").write_text(POLICY)
    result = subprocess.run(
        [sys.executable, "-m", "extender", "explain", "--policy", str(tmp_path / "policy.yaml")],
        input=path.read_bytes(), capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode()
    assert "filter of pod default/db-1: 6 node(s)" in output
    assert "prioritize of pod default/db-1: 1 node(s)" in output, "prioritize sees the nodes filter passed"
    assert "winner: node-00000 (score 10" in output
    assert output.count("winner: node-0000") == 1


def test_explain_names_the_problem_with_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Pod": {"metadata": {"name": "p"}}}')
    assert main(["explain", str(bad)]) == 2
    assert "Nodes or NodeNames" in capsys.readouterr().err
    preempt = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00007-preempt-urgent-1.request.json"
    assert main(["explain", str(preempt)]) == 2
    assert "must be a filter/prioritize body" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


# -- POST {prefix}/explain ------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXPLAINED, ids=fixture_id)
def test_the_explain_endpoint_answers_the_record_of_each_verb(path: Path) -> None:
    client = service_client(path)
    verb = verb_of(path)
    reply = json.loads(client.post(f"/scheduler/{verb}", data=path.read_bytes()).data)
    response = client.post(f"/scheduler/explain?verb={verb}", data=path.read_bytes())
    assert response.status_code == 200 and response.mimetype == "application/json"
    record = response.json
    assert record is not None and record["verb"] == verb and "table" in record
    if verb == "filter":
        answers = {row["node"]: row["answer"] for row in record["table"]["rows"]}
        assert {n for n, a in answers.items() if a != "passed"} == {*reply["FailedNodes"], *reply["FailedAndUnresolvableNodes"]}
    else:
        assert {row["node"]: row["score"] for row in record["table"]["rows"]} == {h["Host"]: h["Score"] for h in reply}


def test_the_explain_endpoint_explains_filter_then_prioritize_by_default() -> None:
    path = FIXTURES / "kube-scheduler-v1.24" / "full-nodes" / "00005-filter-db-1.request.json"
    explained = service_client(path).post("/scheduler/explain", data=path.read_bytes()).json
    assert explained is not None and sorted(explained) == ["filter", "prioritize", "winner"]
    passed = [row["node"] for row in explained["filter"]["table"]["rows"] if row["answer"] == "passed"]
    assert sorted(row["node"] for row in explained["prioritize"]["table"]["rows"]) == sorted(passed)
    assert explained["winner"] == explained["prioritize"]["best"]["node"] and explained["winner"] in passed


@pytest.mark.parametrize(
    ("target", "body", "status", "message"),
    [
        ("/scheduler/explain", b'{"Pod": ', 400, "explain: request body is not valid JSON"),
        ("/scheduler/explain", b'{"NodeNames": []}', 400, "explain: Pod: required"),
        ("/scheduler/explain?verb=preempt", b"{}", 400, "explain: verb 'preempt': must be one of filter, prioritize, both"),
    ],
)
def test_the_explain_endpoint_answers_bad_input_with_a_400_naming_it(target: str, body: bytes, status: int, message: str) -> None:
    client = create_app(service=ExtenderService(load_policy_text(POLICY))).test_client()
    response = client.post(target, data=body)
    assert response.status_code == status and response.mimetype == "application/json"
    assert response.json is not None and response.json["error"].startswith(message)


def test_the_fast_path_never_takes_explain() -> None:
    from extender.serving.fastpath import FastPath

    fast = FastPath.of_app(create_app(service=ExtenderService(load_policy_text(POLICY))))
    assert fast is not None
    verbs = {path for (method, path), _ in fast.targets.items() if method == b"POST"}
    assert verbs == {f"/scheduler/{verb}".encode() for verb in ("filter", "prioritize", "preempt", "bind")}
    head = b"POST /scheduler/explain HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
    assert fast.match(head) is None
    assert fast.match(head.replace(b"explain", b"filter")) is not None, "the same head to a verb is taken"


def test_a_real_server_answers_explain_through_flask_not_the_fast_path(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    path = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00003-filter-batch-1.request.json"
    with running_server(tmp_path, "--policy", str(policy), "--workers", "1") as server:
        explained = requests.post(f"{server.url}/scheduler/explain?verb=filter", data=path.read_bytes(), timeout=10)
        assert explained.status_code == 200, explained.text
        assert explained.json()["verb"] == "filter" and "table" in explained.json()
        assert server.post("filter", path.read_bytes()).status_code == 200
        wrong = requests.get(f"{server.url}/scheduler/explain", timeout=10)
        assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    # the verb call was logged as a record; the explain call was not (it is a question, not a decision)
    log = server.log_text()
    assert log.count('{"verb":"filter"') == 1


def test_the_readme_shows_what_explain_prints(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (FIXTURES.parents[1] / "README.md").read_text()
    command = ".venv/bin/extender explain --policy examples/policy.yaml --verb both examples/filter.json"
    shown = readme.split(f"```bash\n{command}\n```\n\n```text\n", 1)[1].split("```", 1)[0]
    root = FIXTURES.parents[1]
    argv = ["explain", "--policy", str(root / "examples/policy.yaml"), "--verb", "both", str(root / "examples/filter.json")]
    assert main(argv) == 0
    assert capsys.readouterr().out.replace(str(root) + "/", "") == shown
