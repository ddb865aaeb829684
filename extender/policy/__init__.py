"""The policy file: loading, validation with field paths, and the embedded default."""

from extender.policy.errors import PolicyError
from extender.policy.loader import DEFAULT_POLICY_SOURCE, default_policy_text, load_policy, load_policy_text

__all__ = ["DEFAULT_POLICY_SOURCE", "PolicyError", "default_policy_text", "load_policy", "load_policy_text"]
