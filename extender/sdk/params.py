"""marshmallow building blocks for rule params (and the policy schema).

Error messages are written for operators: ``extender validate`` prints them after the
field path, e.g. ``predicates[2].params.conditions[0].status: must be one of True, False, Unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from extender.k8s.selectors import ALL_OPERATORS, SET_OPERATORS, LabelSelector, Requirement
from extender.k8s.timefmt import is_time_reference, parse_duration, parse_timestamp


def one_of(choices: Sequence[str]) -> validate.OneOf:
    """A OneOf validator whose message lists the choices the way operators read them."""
    return validate.OneOf(choices, error=f"must be one of {', '.join(choices)}")


class Duration(fields.Field[timedelta]):
    """A Go-style duration string (``90s``, ``30m``, ``1h30m``, ``2d``) loaded as a timedelta."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValidationError("must be a duration string such as 30m or 1h30m")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Timestamp(fields.Field[datetime]):
    """An RFC 3339 timestamp loaded as an aware datetime."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        if isinstance(value, datetime):  # YAML parses unquoted timestamps itself
            return value if value.tzinfo else parse_timestamp(value.isoformat())
        if not isinstance(value, str):
            raise ValidationError("must be an RFC 3339 timestamp such as 2026-01-31T22:00:00Z")
        try:
            return parse_timestamp(value)
        except ValueError:
            raise ValidationError(f"not an RFC 3339 timestamp: {value!r}") from None


class StrictString(fields.String):
    """A string that YAML scalars like ``true`` or ``1`` are also accepted as (as their YAML text)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float, Decimal)):
            return str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class ConditionStatus(fields.String):
    """``True``/``False``/``Unknown``; YAML's unquoted true/false are accepted too."""

    CHOICES = ("True", "False", "Unknown")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=one_of(self.CHOICES), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, bool):
            return "True" if value else "False"
        return super()._deserialize(value, attr, data, **kwargs)


def duplicate_names(entries: Any, what: str) -> dict[int, Any]:
    """Errors by index for the entries whose ``name`` repeats an earlier entry's, e.g.
    ``{2: {"name": ["duplicate pod class name 'batch'"]}}``. Entries may be partly loaded
    dicts (a list with an invalid entry reaches ``validates_schema`` so) or loaded objects."""
    seen: set[str] = set()
    errors: dict[int, Any] = {}
    for index, entry in enumerate(entries or ()):
        name = entry.get("name") if isinstance(entry, Mapping) else getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            continue
        if name in seen:
            errors[index] = {"name": [f"duplicate {what} name {name!r}"]}
        else:
            seen.add(name)
    return errors


def is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except (InvalidOperation, ValueError):
        return False


class RequirementSchema(Schema):
    """``{key, operator, values, source}``: one requirement on labels or annotations."""

    key = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))
    operator = fields.String(required=True, validate=one_of(ALL_OPERATORS))
    values = fields.List(StrictString(), load_default=list)
    source = fields.String(load_default="label", validate=one_of(("label", "annotation")))

    #: operators allowed; label selectors narrow this to the set operators
    operators: tuple[str, ...] = ALL_OPERATORS

    @validates_schema
    def _check_values(self, data: dict[str, Any], **kwargs: Any) -> None:
        op, values = data.get("operator"), data.get("values", [])
        if op not in self.operators:
            raise ValidationError(f"must be one of {', '.join(self.operators)}", "operator")
        if op in ("In", "NotIn") and not values:
            raise ValidationError(f"{op} needs at least one value", "values")
        if op in ("Exists", "DoesNotExist") and values:
            raise ValidationError(f"{op} takes no values", "values")
        if op in ("Gt", "Lt"):
            if len(values) != 1:
                raise ValidationError(f"{op} takes exactly one value", "values")
            if not (is_number(values[0]) or is_time_reference(values[0])):
                raise ValidationError(
                    f"{op} needs a number or a time (now, now+24h, now-7d, RFC 3339), got {values[0]!r}", "values"
                )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Requirement:
        return Requirement(
            key=data["key"], operator=data["operator"], values=tuple(data["values"]), source=data["source"]
        )


class LabelExpressionSchema(RequirementSchema):
    """A ``matchExpressions`` entry of a label selector (labels only, set operators)."""

    operators = SET_OPERATORS
    source = fields.Constant("label")  # type: ignore[assignment]


class LabelSelectorSchema(Schema):
    """A Kubernetes ``LabelSelector``: ``{matchLabels, matchExpressions}``."""

    match_labels = fields.Dict(
        keys=fields.String(), values=StrictString(), data_key="matchLabels", load_default=dict
    )
    match_expressions = fields.List(
        fields.Nested(LabelExpressionSchema), data_key="matchExpressions", load_default=list
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LabelSelector:
        return LabelSelector(dict(data["match_labels"]), tuple(data["match_expressions"]))
