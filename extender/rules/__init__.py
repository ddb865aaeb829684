"""Built-in rules, one module each. Importing this package registers them."""

from extender.rules import (  # noqa: F401
    least_loaded,
    load_threshold,
    node_condition,
    node_cost,
    node_maintenance,
    node_metadata,
    node_selector_policy,
    placement_rate_limit,
)
