"""Options of a ``type: node-annotations`` source (crane's ``"<value>,<unix-timestamp>"`` annotations)."""

from __future__ import annotations

from marshmallow import Schema


class NodeAnnotationsOptionsSchema(Schema):
    """No options of its own yet: keys are annotation names on the Node objects."""
