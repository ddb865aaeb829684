"""The extender benchmark: ``python -m benchmarks`` (see README "Performance")."""
