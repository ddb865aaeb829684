"""Predicate ``node-selector-policy``: map namespaces or pods to node pools, without editing pod specs.

Each mapping names which pods it applies to (``namespaces`` and/or ``podSelector``; both
must match when both are given) and the nodes they may use (``nodeSelectorTerms``: terms
are ORed, a term's ``matchExpressions`` are ANDed). Expressions read node labels or, with
``source: annotation``, annotations, and ``Gt``/``Lt`` compare decimals or timestamps
(``now+72h``, RFC 3339) — what nodeAffinity cannot express.

A pod gets the FIRST mapping that applies to it. An ``exclusive`` mapping reserves its
nodes: they take only pods that this mapping is the first match for.

    - type: node-selector-policy
      params:
        mappings:
        - name: team-a
          namespaces: [team-a, team-a-ci]
          podSelector: {matchLabels: {tier: batch}}
          nodeSelectorTerms:
          - matchExpressions:
            - {key: node-pool, operator: In, values: [team-a]}
            - {key: example.com/cert-expiry, source: annotation, operator: Gt, values: ["now+72h"]}
          exclusive: true
        unmatchedPods: allow        # or deny: pods no mapping applies to may run nowhere

Rejections are unresolvable: evicting pods does not change which pool a node is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.selectors import LabelSelector, NodeSelectorTerm
from extender.sdk.params import LabelSelectorSchema, RequirementSchema, is_number, one_of
from extender.sdk.registry import predicate
from extender.sdk.rules import Context, Predicate, Rejection
from extender.view import NodeView, PodView


@dataclass(frozen=True)
class PoolMapping:
    """One mapping, compiled: which pods it applies to and which nodes form its pool."""

    name: str
    namespaces: frozenset[str] | None
    pod_selector: LabelSelector | None
    terms: tuple[NodeSelectorTerm, ...]
    exclusive: bool = False

    def applies_to(self, pod: PodView) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.pod_selector is None or self.pod_selector.matches(pod.labels)

    def in_pool(self, node: NodeView, now: datetime) -> bool:
        return any(term.matches(node.labels, node.annotations, now) for term in self.terms)


@dataclass(frozen=True)
class SelectorPolicy:
    mappings: tuple[PoolMapping, ...]
    deny_unmatched: bool = False


class NodeSelectorTermSchema(Schema):
    match_expressions = fields.List(
        fields.Nested(RequirementSchema),
        data_key="matchExpressions",
        required=True,
        validate=validate.Length(min=1, error="list at least one expression"),
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> NodeSelectorTerm:
        return NodeSelectorTerm(tuple(data["match_expressions"]))


class PoolMappingSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))
    namespaces = fields.List(
        fields.String(validate=validate.Length(min=1, error="must not be empty")),
        validate=validate.Length(min=1, error="list at least one namespace, or omit namespaces"),
    )
    pod_selector = fields.Nested(LabelSelectorSchema, data_key="podSelector")
    node_selector_terms = fields.List(
        fields.Nested(NodeSelectorTermSchema),
        data_key="nodeSelectorTerms",
        required=True,
        validate=validate.Length(min=1, error="list at least one term"),
    )
    exclusive = fields.Boolean(load_default=False)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _has_pod_matcher(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # Checked on the input so it is reported even when other fields have errors.
        if isinstance(original, Mapping) and "namespaces" not in original and "podSelector" not in original:
            raise ValidationError("give namespaces, podSelector or both to say which pods the mapping applies to")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> PoolMapping:
        namespaces = data.get("namespaces")
        return PoolMapping(
            name=data["name"],
            namespaces=frozenset(namespaces) if namespaces is not None else None,
            pod_selector=data.get("pod_selector"),
            terms=tuple(data["node_selector_terms"]),
            exclusive=data["exclusive"],
        )


class NodeSelectorPolicyParams(Schema):
    mappings = fields.List(
        fields.Nested(PoolMappingSchema),
        required=True,
        validate=validate.Length(min=1, error="list at least one mapping"),
    )
    unmatched_pods = fields.String(data_key="unmatchedPods", load_default="allow", validate=one_of(("allow", "deny")))

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _unique_names(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # Read from the input: a mapping with other errors still has its name checked.
        raw = original.get("mappings") if isinstance(original, Mapping) else None
        if not isinstance(raw, list):
            return
        seen: dict[str, int] = {}
        errors: dict[int, dict[str, list[str]]] = {}
        for index, mapping in enumerate(raw):
            name = mapping.get("name") if isinstance(mapping, Mapping) else None
            if not isinstance(name, str) or not name:
                continue
            if name in seen:
                errors[index] = {"name": [f"duplicate mapping name {name!r} (also mappings[{seen[name]}])"]}
            else:
                seen[name] = index
        if errors:
            raise ValidationError({"mappings": errors})

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> SelectorPolicy:
        return SelectorPolicy(tuple(data["mappings"]), data["unmatched_pods"] == "deny")


@predicate("node-selector-policy")
class NodeSelectorPolicyPredicate(Predicate):
    """Keep each pod on its mapping's node pool and off pools reserved by other mappings."""

    params_schema = NodeSelectorPolicyParams

    _UNMATCHED = Rejection("node(s) not allowed: no node pool is mapped to this pod")

    def __init__(self, params: SelectorPolicy) -> None:
        super().__init__(params)
        self.mappings = params.mappings
        self.deny_unmatched = params.deny_unmatched
        self._exclusive = tuple(m for m in params.mappings if m.exclusive)
        # Keyed by mapping name (unique): reasons name the pool, never the node.
        self._not_in_pool = {m.name: Rejection(f"node(s) not in node pool {m.name!r}") for m in params.mappings}
        self._reserved = {m.name: Rejection(f"node(s) reserved for node pool {m.name!r}") for m in self._exclusive}
        self._time_dependent = any(
            req.operator in ("Gt", "Lt") and not is_number(req.values[0])
            for m in params.mappings
            for term in m.terms
            for req in term.requirements
        )

    def mapping_for(self, pod: PodView) -> PoolMapping | None:
        """The first mapping that applies to ``pod``, if any."""
        for mapping in self.mappings:
            if mapping.applies_to(pod):
                return mapping
        return None

    def applies_to(self, pod: PodView, ctx: Context) -> bool:
        return bool(self._exclusive) or self.deny_unmatched or self.mapping_for(pod) is not None

    def cache_key(self, pod: PodView, ctx: Context) -> str | None:
        if self._time_dependent:
            return None  # "now+72h" moves every second: evaluate each request
        mapping = self.mapping_for(pod)
        return "" if mapping is None else mapping.name

    def filter(self, pod: PodView, node: NodeView, ctx: Context) -> Rejection | None:
        mapping = self.mapping_for(pod)
        if mapping is None:
            if self.deny_unmatched:
                return self._UNMATCHED
        elif not mapping.in_pool(node, ctx.now):
            return self._not_in_pool[mapping.name]
        for other in self._exclusive:
            if other is not mapping and other.in_pool(node, ctx.now):
                return self._reserved[other.name]
        return None
