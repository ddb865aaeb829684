"""Options of a ``type: node-annotations`` source (crane's ``"<value>,<timestamp>"`` annotations)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {name!r} (an IANA name such as UTC or Asia/Shanghai)") from exc
    return True


class NodeAnnotationsOptionsSchema(Schema):
    """Keys are annotation names on the Node objects (``prefix`` is prepended to each).

    ``scale`` multiplies every value: crane writes ratios (0..1), the built-in load rules
    read percent, so ``scale: 100``. ``timeZone``: the zone crane's annotator runs in
    (its ``TZ``; crane's default is Asia/Shanghai): crane writes local time with a literal
    ``Z``. Unix-second and RFC 3339 timestamps with an offset ignore it.
    """

    prefix = fields.String(load_default="")
    scale = fields.Float(load_default=1.0, validate=validate.Range(min=0, min_inclusive=False), allow_nan=False)
    time_zone = fields.String(data_key="timeZone", load_default="Asia/Shanghai", validate=_known_zone)
