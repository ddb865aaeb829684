"""Built-in rules, one module each. Importing this package registers them."""

from extender.rules import (  # noqa: F401
    node_condition,
    node_cost,
    node_maintenance,
    node_metadata,
    node_selector_policy,
)
