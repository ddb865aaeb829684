"""``type: node-annotations``: load values written on the Node objects, as crane-scheduler's
annotator writes them (``"<value>,<timestamp>"``, e.g. ``cpu_usage_avg_5m: "0.35123,2026-12-02T22:41:07Z"``).

Crane's format, from its source (gocrane/crane-scheduler ``pkg/controller/annotator/node.go``,
``pkg/controller/prometheus/prometheus.go``, ``pkg/utils/utils.go``): the value is the
Prometheus recording rule divided by 100, i.e. a **ratio** (0..1) for ``cpu_usage_*`` and
``mem_usage_*`` (``scale: 100`` turns it into the percent the built-in load rules expect);
the timestamp is Go layout ``2006-01-02T15:04:05Z`` written in the annotator's **local**
time zone (``TZ``, ``Asia/Shanghai`` when unset) with a literal ``Z``: ``timeZone`` says
which zone that is. Unix seconds are accepted as well, and RFC 3339 with a real offset.

Reads the NodeLister in the refresher thread, never the API server. A malformed annotation
leaves that node out of that key (the refresh log counts it), and never fails the fetch.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

from extender.engine.model import SourceSpec
from extender.load.source import MetricSource, NodeLister, Samples
from extender.measured import Sample

#: crane's Go layout, local time with a literal Z
CRANE_LAYOUT = "%Y-%m-%dT%H:%M:%SZ"


def parse_annotation(text: str, zone: ZoneInfo, scale: float = 1.0) -> Sample | None:
    """``"<value>,<timestamp>"`` as a sample, or None if it is not that."""
    value_text, sep, when = text.partition(",")
    if not sep:
        return None
    try:
        value = float(value_text.strip()) * scale
    except ValueError:
        return None
    when = when.strip()
    try:
        return Sample(value, float(when))  # unix seconds
    except ValueError:
        pass
    try:
        at = datetime.strptime(when, CRANE_LAYOUT).replace(tzinfo=zone)
    except ValueError:
        try:  # RFC 3339 with an explicit offset
            at = datetime.fromisoformat(when)
        except ValueError:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=zone)
    return Sample(value, at.timestamp())


class NodeAnnotationsSource(MetricSource):
    """Keys are annotation names (``prefix`` prepended); values parsed by :func:`parse_annotation`."""

    def __init__(self, spec: SourceSpec, nodes: NodeLister) -> None:
        super().__init__(spec, nodes)
        self.prefix: str = spec.options.get("prefix", "")
        self.scale: float = spec.options.get("scale", 1.0)
        self.zone = ZoneInfo(spec.options.get("time_zone", "Asia/Shanghai"))

    def fetch(self, keys: Collection[str]) -> Samples:
        result: dict[str, dict[str, Sample]] = {key: {} for key in keys}
        annotations = {key: self.prefix + key for key in keys}
        for view in self.nodes():
            for key, annotation in annotations.items():
                text = view.annotations.get(annotation)
                if text is None:
                    continue
                sample = parse_annotation(text, self.zone, self.scale)
                if sample is not None:
                    result[key][view.name] = sample
        return result
