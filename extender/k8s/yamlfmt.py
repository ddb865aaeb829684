"""Describing YAML syntax errors the way an operator needs them: what, and where."""

from __future__ import annotations

import yaml


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """``expected <block end>, but found '<scalar>' (line 3, column 2)``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)
