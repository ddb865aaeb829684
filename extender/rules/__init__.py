"""Built-in rules, one module each. Importing this package registers them."""

from extender.rules import (  # noqa: F401
    least_loaded,
    load_threshold,
    load_variation_risk,
    node_condition,
    node_cost,
    node_maintenance,
    node_metadata,
    node_selector_policy,
    placement_rate_limit,
    promql,
    target_load_packing,
)
