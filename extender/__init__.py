"""extender: a Kubernetes scheduler extender driven by a declarative policy."""

__version__ = "0.1.0"
