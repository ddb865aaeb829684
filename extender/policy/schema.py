"""The policy file's structure (marshmallow). Rule params are validated by each rule's own schema."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from extender.sdk.params import LabelSelectorSchema, one_of

MODES = ("enforce", "shadow")
ON_ERROR = ("allow", "deny")


class NamespacesSchema(Schema):
    include = fields.List(fields.String(), load_default=list)
    # not "exclude": that name is marshmallow's own Schema option
    excluded = fields.List(fields.String(), data_key="exclude", load_default=list)


class ScopeSchema(Schema):
    namespaces = fields.Nested(NamespacesSchema, load_default=lambda: {"include": [], "excluded": []})
    pod_selector = fields.Nested(LabelSelectorSchema, data_key="podSelector", load_default=None)
    exclude_owner_kinds = fields.List(fields.String(), data_key="excludeOwnerKinds", load_default=["DaemonSet"])


class RuleSchema(Schema):
    """Fields every rule entry has; ``params`` is checked later against the rule's schema."""

    name = fields.String(validate=validate.Length(min=1, error="must not be empty"))
    type = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))
    enabled = fields.Boolean(load_default=True)
    mode = fields.String(load_default="enforce", validate=one_of(MODES))
    params = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)


class PredicateSchema(RuleSchema):
    on_error = fields.String(data_key="onError", load_default="deny", validate=one_of(ON_ERROR))


class PrioritySchema(RuleSchema):
    on_error = fields.String(data_key="onError", load_default="allow", validate=one_of(ON_ERROR))
    weight = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0, min_inclusive=False, error="must be greater than 0"),
    )


class BindSchema(Schema):
    enabled = fields.Boolean(load_default=False)


class PolicySchema(Schema):
    class Meta:
        unknown = RAISE

    version = fields.Integer(load_default=1, validate=validate.Equal(1, error="must be 1"))
    scope = fields.Nested(ScopeSchema, load_default=lambda: ScopeSchema().load({}))
    predicates = fields.List(fields.Nested(PredicateSchema), load_default=list)
    priorities = fields.List(fields.Nested(PrioritySchema), load_default=list)
    bind = fields.Nested(BindSchema, load_default=lambda: {"enabled": False})
    #: checked by extender.policy.sources (each type has its own keys)
    sources = fields.Raw(load_default=None)

    @validates_schema(skip_on_field_errors=False)
    def _unique_names(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: dict[str, str] = {}
        errors: dict[str, Any] = {}
        for section in ("predicates", "priorities"):
            for index, rule in enumerate(data.get(section) or []):
                name = rule.get("name") or rule.get("type")
                if not name:
                    continue
                where = f"{section}[{index}]"
                if name in seen:
                    errors.setdefault(section, {})[index] = {
                        "name": [f"duplicate rule name {name!r} (also {seen[name]}); give each entry a distinct name"]
                    }
                else:
                    seen[name] = where
        if errors:
            raise ValidationError(errors)
