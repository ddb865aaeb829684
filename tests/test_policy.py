"""Loading and validating policy files: every problem, with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.policy import DEFAULT_POLICY_SOURCE, PolicyError, default_policy_text, load_policy, load_policy_text


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(text)
    return err.value.problems


def test_the_embedded_default_policy_is_valid() -> None:
    policy = load_policy()
    assert policy.source == DEFAULT_POLICY_SOURCE
    assert [r.name for r in policy.predicates] == ["node-condition", "node-maintenance"]
    assert policy.priorities == ()  # node-metadata is present but disabled
    assert "node-metadata" in default_policy_text()
    assert policy.scope.exclude_namespaces == frozenset({"kube-system"})
    assert policy.scope.exclude_owner_kinds == frozenset({"DaemonSet"})
    assert not policy.bind_enabled


def test_an_empty_policy_is_valid_and_does_nothing() -> None:
    policy = load_policy_text("")
    assert policy.predicates == () and policy.priorities == ()
    assert policy.scope.exclude_owner_kinds == frozenset({"DaemonSet"})


def test_every_problem_is_reported_in_document_order() -> None:
    assert problems(
        """
version: 2
scope:
  namespaces: {include: default}
  podSelector: {matchExpressions: [{key: app, operator: Gt, values: ["1"]}]}
predicates:
- type: node-condition
  mode: canary
  onError: ignore
  params: {conditions: [{type: Ready, status: maybe}]}
- {type: node-condition, params: {conditions: [{type: X, status: "True"}]}}
- name: ""
  type: ""
priorities:
- {type: node-metadata, weight: 0, params: {key: k, strategy: highest}}
bind: {enabled: maybe}
extra: 1
"""
    ) == [
        "bind.enabled: must be true or false",
        "extra: unknown field",
        "predicates[0].mode: must be one of enforce, shadow",
        "predicates[0].onError: must be one of allow, deny",
        "predicates[0].params.conditions[0].status: must be one of True, False, Unknown",
        "predicates[1].name: duplicate rule name 'node-condition' (also predicates[0]); give each entry a distinct name",
        "predicates[2].name: must not be empty",
        "predicates[2].type: must not be empty",
        "priorities[0].weight: must be greater than 0",
        "scope.namespaces.include: must be a list",
        "scope.podSelector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist",
        "version: must be 1",
    ]


def test_yaml_syntax_errors_name_the_line() -> None:
    assert problems("predicates:\n  - type: x\n bad") == [
        "not valid YAML: expected <block end>, but found '<scalar>' (line 3, column 2)"
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b") == ["(top level): must be a mapping, got list"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "missing.yaml")
    assert err.value.problems == ["cannot read policy file: No such file or directory"]
    assert err.value.source.endswith("missing.yaml")


def test_disabled_rules_are_validated_but_not_run() -> None:
    found = problems("priorities: [{type: node-metadata, enabled: false, params: {key: k, strategy: best}}]")
    assert [p.split(": ")[0] for p in found] == ["priorities[0].params.strategy"]
    policy = load_policy_text("priorities: [{type: node-metadata, enabled: false, params: {key: k, strategy: highest}}]")
    assert policy.priorities == ()


def test_rule_settings_and_defaults() -> None:
    policy = load_policy_text(
        """
predicates:
- {type: node-condition, params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}}
- {name: trial, type: node-condition, mode: shadow, onError: allow, params: {conditions: [{type: A, status: "True"}]}}
priorities:
- {type: node-metadata, weight: 2.5, params: {key: k, strategy: lowest}}
bind: {enabled: true}
"""
    )
    first, trial = policy.predicates
    assert (first.name, first.mode, first.on_error) == ("node-condition", "enforce", "deny")
    assert (trial.name, trial.mode, trial.on_error) == ("trial", "shadow", "allow")
    (metadata,) = policy.priorities
    assert (metadata.weight, metadata.on_error) == (2.5, "allow")
    assert policy.bind_enabled
    assert len(policy.digest) == 16
