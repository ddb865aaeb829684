"""Priority ``node-cost``: prefer cheaper capacity, with per-pod-class capacity-type tiers.

A node's price is looked up by its instance-type and capacity-type labels; cheaper scores
higher. Pod classes (first match wins) rank preferred capacity types above all others and
avoided ones below all others, whatever the prices; within a tier cheaper still wins.

    - type: node-cost
      params:
        instanceTypeLabel: node.kubernetes.io/instance-type   # default
        capacityTypeLabel: karpenter.sh/capacity-type         # default
        defaultCapacityType: on-demand   # default; for nodes without the capacity-type label
        prices:                          # instance type -> capacity type -> price per hour
          m5.xlarge: {on-demand: 0.192, spot: 0.0672}
          r5.2xlarge: {on-demand: 0.504, spot: 0.1512}
        unknownPrice: 1.0    # optional: price of a node not in the table (else: no value, lowest)
        per: node            # node | cpu (per allocatable core) | memory (per allocatable GiB)
        podClasses:
        - name: batch
          podSelector: {matchLabels: {workload: batch}}   # matchers are ANDed; an empty
          namespaces: [batch]                             # podSelector ({}) matches every pod
          priorityClassNames: [batch-low]
          prefer: [spot]
        - name: critical
          priorityClassNames: [system-cluster-critical]
          avoid: [spot]

Raw score = tier * O - unit price; tier +1 preferred, 0 neutral, -1 avoided.

Choosing the offset O. Tiers separate whatever the prices only if O exceeds S, the widest
spread of unit prices the spec can produce. ``per: node``: S = max - min of the table's
prices and unknownPrice. ``per: cpu``/``memory``: price / allocatable is unbounded as a
node shrinks, so the divisor is floored at 1 core / 1 GiB (only smaller nodes are ranked
as if they had 1); unit prices then lie in [0, max price], S = max price. A node with no
allocatable of the resource is priced like an unknown one (unknownPrice at the floor).
The engine min-max normalises per request; with k tier gaps (1 if the class has prefer or
avoid, 2 if both) the worst-case distance between the worst node of a tier and the best of
the next is 10(O - S) / (kO + S) points. O is the smallest value keeping that at 1 point:
O = S(10 + 1)/(10 - k), 11/9 S or 11/8 S, so tiers stay apart even as integers when the
rule scores alone; any larger O would only squeeze price differences within a tier. With
per cpu/memory S is sized for the dearest type at 1 core/GiB, so per-unit differences
within a tier are small next to O on large nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.selectors import LabelSelector
from extender.sdk.params import LabelSelectorSchema, StrictString, duplicate_names, one_of
from extender.sdk.registry import priority
from extender.sdk.rules import MAX_SCORE, Context, Priority
from extender.view import NodeView, PodView

PER = ("node", "cpu", "memory")
#: allocatable resource and base units (cores, bytes) per priced unit (core, GiB)
_UNITS = {"cpu": ("cpu", Decimal(1)), "memory": ("memory", Decimal(2**30))}
#: smallest allocatable (cores or GiB) a price is divided by; bounds unit prices
FLOOR = 1.0
#: normalised points kept between tiers in the worst case (a hair over 1 for float error)
MIN_GAP = 1.001
_NON_NEGATIVE = "must be a non-negative number"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ON_DEMAND = "on-demand"


def _price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return float(number) if number.is_finite() and number >= 0 else None


class PriceTable(fields.Field[dict[str, dict[str, float]]]):
    """``{instance type: {capacity type: price}}``, errors reported per entry."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, dict[str, float]]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping of instance type to {capacity type: price}")
        if not value:
            raise ValidationError("list at least one instance type")
        table: dict[str, dict[str, float]] = {}
        errors: dict[str, Any] = {}
        for itype, row in value.items():
            if not isinstance(row, Mapping) or not row:
                errors[str(itype)] = "must be a non-empty mapping of capacity type to price"
                continue
            for ctype, raw in row.items():
                price = _price(raw)
                if price is None:
                    errors.setdefault(str(itype), {})[str(ctype)] = _NON_NEGATIVE
                else:
                    table.setdefault(str(itype), {})[str(ctype)] = price
        if errors:
            raise ValidationError(errors)
        return table


@dataclass(frozen=True, slots=True)
class PodClass:
    """Which pods a class covers (None: any) and their capacity-type tiers."""

    name: str
    pod_selector: LabelSelector | None = None
    namespaces: frozenset[str] | None = None
    priority_class_names: frozenset[str] | None = None
    prefer: frozenset[str] = frozenset()
    avoid: frozenset[str] = frozenset()

    def matches(self, pod: PodView) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        if self.priority_class_names is not None and pod.priority_class_name not in self.priority_class_names:
            return False
        return self.pod_selector is None or self.pod_selector.matches(pod.labels)

    def tier(self, capacity_type: str) -> int:
        return 1 if capacity_type in self.prefer else -1 if capacity_type in self.avoid else 0


@dataclass(frozen=True, slots=True)
class CostSpec:
    """Validated params of :class:`NodeCostPriority`."""

    prices: Mapping[str, Mapping[str, float]]
    instance_type_label: str = INSTANCE_TYPE_LABEL
    capacity_type_label: str = CAPACITY_TYPE_LABEL
    default_capacity_type: str = ON_DEMAND
    unknown_price: float | None = None
    per: str = "node"
    pod_classes: tuple[PodClass, ...] = ()


_NOT_EMPTY = validate.Length(min=1, error="must not be empty")
_MATCHERS = ("podSelector", "namespaces", "priorityClassNames")


def _name(data_key: str, default: str) -> StrictString:
    return StrictString(data_key=data_key, load_default=default, validate=_NOT_EMPTY)


class PodClassSchema(Schema):
    name = fields.String(required=True, validate=_NOT_EMPTY)
    pod_selector = fields.Nested(LabelSelectorSchema, data_key="podSelector")
    namespaces = fields.List(fields.String(), validate=_NOT_EMPTY)
    priority_class_names = fields.List(fields.String(), data_key="priorityClassNames", validate=_NOT_EMPTY)
    prefer = fields.List(StrictString(), load_default=list)
    avoid = fields.List(StrictString(), load_default=list)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        errors: dict[str, str] = {}
        if not any(key in original for key in _MATCHERS):  # original: an invalid matcher is not missing
            errors["_schema"] = f"give at least one of {', '.join(_MATCHERS)}"
        both = sorted(set(data.get("prefer", ())) & set(data.get("avoid", ())))
        if both:
            errors["avoid"] = f"{', '.join(both)} also in prefer: a capacity type cannot be both"
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> PodClass:
        sets = {key: frozenset(value) for key, value in data.items() if isinstance(value, list)}
        return PodClass(**{**data, **sets})


class NodeCostParams(Schema):
    instance_type_label = _name("instanceTypeLabel", INSTANCE_TYPE_LABEL)
    capacity_type_label = _name("capacityTypeLabel", CAPACITY_TYPE_LABEL)
    default_capacity_type = _name("defaultCapacityType", ON_DEMAND)
    prices = PriceTable(required=True)
    unknown_price = fields.Float(
        data_key="unknownPrice", load_default=None, validate=validate.Range(min=0, error=_NON_NEGATIVE)
    )
    per = fields.String(load_default="node", validate=one_of(PER))
    pod_classes = fields.List(fields.Nested(PodClassSchema), data_key="podClasses", load_default=list)

    @validates_schema(skip_on_field_errors=False)
    def _unique_classes(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors = duplicate_names(data.get("pod_classes"), "pod class")
        if errors:
            raise ValidationError({"podClasses": errors})

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> CostSpec:
        return CostSpec(**{**data, "pod_classes": tuple(data["pod_classes"])})


def price_spread(spec: CostSpec) -> float:
    """S: the largest difference between two unit prices this spec can produce."""
    prices = [price for row in spec.prices.values() for price in row.values()]
    if spec.unknown_price is not None:
        prices.append(spec.unknown_price)
    if spec.per == "node":
        return max(prices) - min(prices)
    return max(prices) / FLOOR  # unit prices approach 0 as allocatable grows


def tier_offset(spread: float, pod_class: PodClass) -> float:
    """The smallest offset keeping tiers ``MIN_GAP`` normalised points apart (see module docstring)."""
    gaps = bool(pod_class.prefer) + bool(pod_class.avoid)
    if spread <= 0:
        return 1.0  # equal unit prices: any positive offset separates
    return spread * (MAX_SCORE + MIN_GAP) / (MAX_SCORE - MIN_GAP * gaps)


@priority("node-cost")
class NodeCostPriority(Priority):
    """Score a node by minus its (unit) price, shifted by the pod class's capacity-type tier."""

    params_schema = NodeCostParams

    def __init__(self, params: CostSpec) -> None:
        super().__init__(params)
        self.spec = params
        self._units = _UNITS.get(params.per)
        spread = price_spread(params)
        self._classes = tuple((c, tier_offset(spread, c)) for c in params.pod_classes)

    def cache_key(self, pod: PodView, ctx: Context) -> int:
        """The index of the pod's class (-1: none); the score depends on nothing else of the pod."""
        for index, (pod_class, _) in enumerate(self._classes):
            if pod_class.matches(pod):
                return index
        return -1

    def score(self, pod: PodView, node: NodeView, ctx: Context) -> float | None:
        spec = self.spec
        capacity_type = node.labels.get(spec.capacity_type_label, spec.default_capacity_type)
        unit_price = self.unit_price(node, capacity_type)
        if unit_price is None:
            return None
        for pod_class, offset in self._classes:
            if pod_class.matches(pod):
                return pod_class.tier(capacity_type) * offset - unit_price
        return -unit_price

    def unit_price(self, node: NodeView, capacity_type: str) -> float | None:
        """The node's price per node, core or GiB; None if unknown and no unknownPrice."""
        spec = self.spec
        row = spec.prices.get(node.labels.get(spec.instance_type_label, ""))
        price = row.get(capacity_type) if row is not None else None
        if price is None:
            price = spec.unknown_price
        if self._units is None or price is None:
            return price
        resource, per_unit = self._units
        amount = node.allocatable.get(resource)
        if amount is None or amount <= 0:
            return None if spec.unknown_price is None else spec.unknown_price / FLOOR
        return price / max(float(amount / per_unit), FLOOR)
