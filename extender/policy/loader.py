"""Loading a policy file: YAML -> structure check -> each rule's params -> :class:`Policy`.

Every problem is collected (not just the first) and reported with its field path, so
``extender validate`` and a refusing ``extender serve`` print the same complete list.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

import extender.rules  # noqa: F401  (registers the built-in rules)
from extender.engine.model import ConfiguredPredicate, ConfiguredPriority, ConfiguredRule, Policy, PodScope, SourceSpec
from extender.k8s.selectors import LabelSelector
from extender.k8s.yamlfmt import describe_yaml_error
from extender.policy.errors import PolicyError, flatten
from extender.policy.schema import PolicySchema
from extender.policy.sources import load_sources
from extender.sdk.registry import Kind, UnknownRuleError, resolve
from extender.sdk.rules import Rule

DEFAULT_POLICY_SOURCE = "<embedded default policy>"


def default_policy_text() -> str:
    """The policy ``extender serve`` uses when given no file."""
    return resources.files("extender.policy").joinpath("default-policy.yaml").read_text(encoding="utf-8")


def text_digest(text: str) -> str:
    """A policy's digest: of its text, so a changed file is told by its content."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate the policy at ``path`` (the embedded default if None)."""
    if path is None:
        return load_policy_text(default_policy_text(), DEFAULT_POLICY_SOURCE)
    return load_policy_text(read_policy_file(path), str(path))


def read_policy_file(path: str | Path) -> str:
    """The policy file's text (universal newlines, so its digest is the same wherever it is
    read); :class:`PolicyError` naming why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"cannot read policy file: {exc.strerror or exc}"], str(path)) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"policy file is not UTF-8 text: {exc.reason}"], str(path)) from None


def load_policy_text(text: str, source: str = "<inline>") -> Policy:
    """Validate policy YAML text; raise :class:`PolicyError` listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError([f"not valid YAML: {describe_yaml_error(exc)}"], source) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PolicyError([f"(top level): must be a mapping, got {type(document).__name__}"], source)
    problems: list[str] = []
    try:
        data: dict[str, Any] = PolicySchema().load(document)
    except ValidationError as exc:
        problems.extend(flatten(exc.messages))
        data = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    try:
        sources = load_sources(document.get("sources"))
    except ValidationError as exc:
        problems.extend(flatten(exc.messages, "sources"))
        sources = {}
    predicates = _build_rules("predicate", "predicates", document, data, problems)
    priorities = _build_rules("priority", "priorities", document, data, problems)
    sources = _bind_metrics(sources, [("predicates", predicates), ("priorities", priorities)], problems)
    if problems:
        raise PolicyError(problems, source)
    scope = data["scope"]
    return Policy(
        scope=PodScope(
            include_namespaces=frozenset(scope["namespaces"]["include"]),
            exclude_namespaces=frozenset(scope["namespaces"]["excluded"]),
            pod_selector=scope["pod_selector"] or LabelSelector(),
            exclude_owner_kinds=frozenset(scope["exclude_owner_kinds"]),
        ),
        predicates=tuple(predicates),  # type: ignore[arg-type]
        priorities=tuple(priorities),  # type: ignore[arg-type]
        bind_enabled=data["bind"]["enabled"],
        sources=sources,
        source=source,
        digest=text_digest(text),
    )


def _bind_metrics(
    sources: dict[str, SourceSpec], sections: list[tuple[str, list[ConfiguredRule[Rule]]]], problems: list[str]
) -> dict[str, SourceSpec]:
    """Give each source the metric keys the enabled rules read; report rules naming a
    source the policy does not define. Sources no rule reads are left out (not started)."""
    keys: dict[str, set[str]] = {}
    for section, rules in sections:
        for rule in rules:
            for ref in rule.rule.metrics():
                if ref.source not in sources:
                    defined = ", ".join(sorted(sources)) or "none"
                    problems.append(
                        f"{section}[{rule.name}].params: reads {ref.key!r} from source {ref.source!r}, "
                        f"which sources: does not define (defined: {defined})"
                    )
                    continue
                keys.setdefault(ref.source, set()).add(ref.key)
    return {name: replace(spec, keys=frozenset(keys[name])) for name, spec in sources.items() if name in keys}


def _build_rules(
    kind: Kind, section: str, document: dict[str, Any], data: dict[str, Any], problems: list[str]
) -> list[ConfiguredRule[Rule]]:
    """Resolve each entry's type and validate its params with the rule's own schema."""
    raw_entries = document.get(section)
    if not isinstance(raw_entries, list):
        return []
    loaded = data.get(section) if isinstance(data.get(section), list) else None
    built: list[ConfiguredRule[Rule]] = []
    for index, raw in enumerate(raw_entries):
        where = f"{section}[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not raw["type"]:
            continue  # the structure check already reported it
        entry = loaded[index] if loaded is not None and index < len(loaded) else None
        try:
            cls = resolve(kind, raw["type"])
        except UnknownRuleError as exc:
            problems.append(f"{where}.type: {exc}")
            continue
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            continue  # reported by the structure check
        try:
            loaded_params = cls.params_schema().load(params)
        except ValidationError as exc:
            problems.extend(flatten(exc.messages, f"{where}.params"))
            continue
        try:
            rule = cls(loaded_params)
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}.params: {exc}")
            continue
        if problems or entry is None or not entry["enabled"]:
            continue  # the policy is invalid anyway (problems are raised), or the rule is off
        built.append(
            ConfiguredRule(
                name=entry.get("name") or raw["type"],
                rule=rule,
                mode=entry["mode"],
                on_error=entry["on_error"],
                weight=float(entry.get("weight", 1.0)),
            )
        )
    return built


__all__ = ["DEFAULT_POLICY_SOURCE", "PolicyError", "default_policy_text", "load_policy", "load_policy_text"]
