"""Finding rules: built-ins by type name, ``module:Class`` references, and entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
import textwrap
from pathlib import Path

import pytest

from extender.policy import PolicyError, load_policy_text
from extender.sdk import Predicate, Priority, UnknownRuleError, known_types, predicate, resolve

THIRD_PARTY = textwrap.dedent(
    '''
    from marshmallow import Schema, fields
    from extender.sdk import Predicate, Priority, Rejection

    class Params(Schema):
        min_version = fields.Integer(required=True, data_key="minVersion")

    class GpuDriverPredicate(Predicate):
        params_schema = Params

        def filter(self, pod, node, ctx):
            version = int(node.labels.get("example.com/gpu-driver", "0"))
            if version < self.params["min_version"]:
                return Rejection("node(s) had an old GPU driver")
            return None

    class Flat(Priority):
        def score(self, pod, node, ctx):
            return 1.0

    NOT_A_RULE = 3
    '''
)


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package installed the way pip installs one: a module plus a dist-info with entry points."""
    (tmp_path / "acme_rules.py").write_text(THIRD_PARTY)
    dist = tmp_path / "acme_rules-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rules\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[extender.rules]\ngpu-driver = acme_rules:GpuDriverPredicate\nflat = acme_rules:Flat\n"
        "broken = acme_rules_missing:Nope\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_rules", None)


def test_builtins_are_registered() -> None:
    assert {"node-condition", "node-maintenance", "node-selector-policy"} <= set(known_types("predicate"))
    assert {"node-metadata", "node-cost"} <= set(known_types("priority"))


def test_entry_point_rules_load_by_name_with_their_params_validated(third_party: Path) -> None:
    assert resolve("predicate", "gpu-driver").__name__ == "GpuDriverPredicate"
    assert "gpu-driver" in known_types("predicate") and "flat" in known_types("priority")
    policy = load_policy_text("predicates: [{type: gpu-driver, params: {minVersion: 535}}]\npriorities: [{type: flat}]")
    assert policy.predicates[0].name == "gpu-driver"
    with pytest.raises(PolicyError) as err:
        load_policy_text("predicates: [{type: gpu-driver, params: {minversion: 1}}]")
    assert err.value.problems == [
        "predicates[0].params.minVersion: required",
        "predicates[0].params.minversion: unknown field",
    ]


def test_module_class_references(third_party: Path) -> None:
    policy = load_policy_text("predicates: [{type: 'acme_rules:GpuDriverPredicate', params: {minVersion: 1}}]")
    assert policy.predicates[0].name == "acme_rules:GpuDriverPredicate"
    with pytest.raises(PolicyError) as err:
        load_policy_text(
            "predicates:\n- {type: 'acme_rules:Flat'}\n- {type: 'acme_rules:NOT_A_RULE'}\n"
            "- {type: 'acme_rules:Missing'}\n- {type: 'no_such_module:X'}\n- {type: broken}"
        )
    assert err.value.problems == [
        "predicates[0].type: 'acme_rules:Flat' is a priority, not a predicate",
        "predicates[1].type: 'acme_rules:NOT_A_RULE' is not a Predicate subclass",
        "predicates[2].type: module 'acme_rules' has no attribute 'Missing'",
        "predicates[3].type: cannot import module 'no_such_module': No module named 'no_such_module'",
        "predicates[4].type: entry point 'broken' (acme_rules_missing:Nope) failed to load: No module named 'acme_rules_missing'",
    ]


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRuleError, match=r"unknown predicate type 'gpu' \(known: .*node-condition"):
        resolve("predicate", "gpu")


def test_decorator_refuses_the_wrong_base_and_a_taken_name() -> None:
    with pytest.raises(TypeError, match="must subclass Predicate"):

        @predicate("wrong-base")  # type: ignore[type-var]
        class NotAPredicate(Priority):
            def score(self, pod, node, ctx):  # type: ignore[no-untyped-def]
                return 0.0

    with pytest.raises(ValueError, match="already registered"):

        @predicate("node-condition")
        class Impostor(Predicate):
            def filter(self, pod, node, ctx):  # type: ignore[no-untyped-def]
                return None
