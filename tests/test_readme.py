"""The README's examples work verbatim: the curl calls (against a real server), the rule SDK
example (written out, tested and enabled), and the KubeSchedulerConfiguration snippet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import extender.rules  # noqa: F401  (registers the built-in rules)
from extender.policy import load_policy_text
from extender.sdk import known_types
from tests.test_server import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m[1], m[2]) for m in re.finditer(r"```(\w*)\n(.*?)```", README, re.S)]


def curl_examples() -> list[tuple[str, str, str]]:
    """(policy, curl command, expected output) for each curl block followed by a json block;
    a ``--policy`` serve block switches the policy for the examples after it."""
    found, policy = [], ""
    all_blocks = blocks()
    for i, (lang, code) in enumerate(all_blocks):
        if lang == "bash" and "extender serve --policy" in code:
            policy = code.split("--policy", 1)[1].split()[0]
        if lang == "bash" and code.startswith("curl "):
            assert all_blocks[i + 1][0] == "json", f"curl example without its output: {code}"
            found.append((policy, code.strip(), all_blocks[i + 1][1].strip()))
    return found


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """A real server per policy the README uses ("" = the embedded default)."""
    ports, processes = {}, []
    try:
        for policy in sorted({p for p, _, _ in curl_examples()}):
            port = free_port()
            args = [sys.executable, "-m", "extender", "serve", "--port", str(port), "--workers", "1"]
            if policy:
                args += ["--policy", policy]
            process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
            processes.append(process)
            wait_ready(f"http://127.0.0.1:{port}", process)
            ports[policy] = port
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_the_readme_has_its_two_quickstart_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [code.strip() for lang, code in blocks() if lang == "bash" and code.strip() in quickstart]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/extender serve",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
    ]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(("policy", "command", "expected"), curl_examples(), ids=lambda v: v[:60])
def test_curl_examples_answer_what_the_readme_shows(servers: dict[str, int], policy: str, command: str, expected: str) -> None:
    assert "http://localhost:8888/" in command
    command = command.replace("localhost:8888", f"127.0.0.1:{servers[policy]}")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    actual = json.loads(result.stdout)
    if "…" not in expected:
        assert actual == json.loads(expected)
        return
    # The filter output abbreviates node objects: compare everything else, and the names.
    assert [n["metadata"]["name"] for n in actual["Nodes"]["items"]] == re.findall(r'"name":"([^"]+)",…', expected)
    shown = json.loads(re.sub(r'"Nodes":\{.*?\]\},', "", expected))
    assert {k: v for k, v in actual.items() if k != "Nodes"} == shown


def test_the_rule_sdk_example_can_be_written_tested_and_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.split("## Writing a rule", 1)[1].split("\n## ", 1)[0]
    python = [code for lang, code in blocks() if lang == "python" and code in section]
    rule, test = python
    assert len(rule.splitlines()) + len(test.splitlines()) + 4 <= 30, "the README promises under 30 lines"
    (tmp_path / "my_rules.py").write_text(rule)
    (tmp_path / "test_my_rules.py").write_text(test)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_rules.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    enable = next(code for lang, code in blocks() if lang == "yaml" and "my_rules:GpuDriverPredicate" in code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        policy = load_policy_text(enable)
    finally:
        sys.modules.pop("my_rules", None)
    assert policy.predicates[0].rule.params == {"min_version": 535}


def test_the_kube_scheduler_configuration_snippets() -> None:
    from tests.test_deploy import scheduler_config_problems  # the same checks the manifests get

    snippets = [yaml.safe_load(code) for lang, code in blocks() if lang == "yaml" and "KubeSchedulerConfiguration" in code]
    assert [s["extenders"][0]["nodeCacheCapable"] for s in snippets] == [True, False, True, True]
    for snippet in snippets:
        assert scheduler_config_problems(snippet) == []
    (tls,) = [s["extenders"][0] for s in snippets if s["extenders"][0]["urlPrefix"].startswith("https://")]
    assert tls["urlPrefix"].startswith("https://") and "enableHTTPS" not in tls, "a CA, not enableHTTPS (which skips verification)"
    assert set(tls["tlsConfig"]) == {"caFile", "certFile", "keyFile", "serverName"}


def test_the_load_aware_policy_examples_validate_and_name_the_rules_they_document() -> None:
    examples = [code for lang, code in blocks() if lang == "yaml" and code.startswith("sources:")]
    assert examples, "the Load-aware scheduling section shows a policy with sources"
    for code in examples:
        policy = load_policy_text(code, "README")
        assert policy.sources, "a rule reads the source, so it would be started"
    documented = set(re.findall(r"^\| `([a-z-]+)` \| (?:predicate|priority)", README, re.M))
    assert documented == set(known_types("predicate")) | set(known_types("priority")), "every built-in rule has a row"
