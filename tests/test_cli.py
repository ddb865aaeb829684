"""The ``extender`` command: validate, and serve refusing a bad policy or bad settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from extender.cli import main
from extender.policy import default_policy_text

BROKEN = """
predicates:
- type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True"}
    - {type: KernelDeadlock, status: "True"}
    - {type: ReadonlyFilesystem, status: maybe}
- type: node-maintenance
  params: {}
priorities:
- {type: node-metadata, weight: -1, params: {key: k, strategy: highest}}
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extender", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_validate_accepts_a_valid_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(default_policy_text())
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: valid (2 predicate(s), 0 priority(ies), bind disabled)\n"
        "register in the KubeSchedulerConfiguration: filterVerb: filter, preemptVerb: preempt"
        " (no prioritizeVerb: the policy has no priorities, so each pod costs one call instead of two)\n"
    )


@pytest.mark.parametrize(
    ("policy", "hint"),
    [
        ("priorities: [{type: node-metadata, params: {key: rank, strategy: highest}}]",
         "register in the KubeSchedulerConfiguration: prioritizeVerb: prioritize (no filterVerb or preemptVerb: "
         "the policy has no predicates, so each pod costs one call instead of two)"),
        ("predicates: [{type: node-condition, params: {conditions: [{type: Ready, status: \"True\", match: NotEqual}]}}]\npriorities: [{type: node-metadata, params: {key: rank, strategy: highest}}]"
         "\nbind: {enabled: true}",
         "register in the KubeSchedulerConfiguration: filterVerb: filter, prioritizeVerb: prioritize, "
         "preemptVerb: preempt, bindVerb: bind"),
        ("{}", "register no verbs: this policy has no predicates, priorities or bind (the extender would change nothing)"),
    ],
)  # fmt: skip
def test_validate_says_which_verbs_the_policy_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, hint: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == hint


def test_validate_prints_every_problem_with_its_path_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = run("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 3 problem(s)"
    assert lines[1:] == [
        "predicates[0].params.conditions[2].status: must be one of True, False, Unknown",
        lines[2],
        "priorities[0].weight: must be greater than 0",
    ]
    assert lines[2].startswith("predicates[1].params: ")


def test_serve_refuses_an_invalid_policy_with_the_same_messages(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    validate = run("validate", str(path)).stdout.splitlines()[1:]
    result = run("serve", "--policy", str(path), "--port", "1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"extender: refusing to start: {path} is invalid:\n")
    assert [line.strip() for line in result.stderr.splitlines()[1:]] == validate


def test_serve_rejects_bad_settings_from_flags_and_environment() -> None:
    assert "workers -1: must be at least 1 (or 0 for the default)" in run("serve", "--workers=-1").stderr
    env = {"EXTENDER_PORT": "http", "PATH": "/usr/bin:/bin"}
    result = run("serve", env=env)
    assert result.returncode == 2
    assert result.stderr == "extender: EXTENDER_PORT='http': must be an integer\n"


def test_validate_on_a_missing_file(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == "cannot read policy file: No such file or directory"
