"""Built-in rules, one module each. Importing this package registers them."""

from extender.rules import (  # noqa: F401
    load_variation_risk,
    node_condition,
    node_cost,
    node_maintenance,
    node_metadata,
    node_selector_policy,
    promql,
    target_load_packing,
)
