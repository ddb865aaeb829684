"""``type: metrics-server``: node usage from ``/apis/metrics.k8s.io/v1beta1/nodes``.

One GET per refresh through the extender's API client (its auth, CA and keepalive), bounded
by the source's ``timeout`` including retries. Keys:

- ``cpu``, ``memory``: usage in percent of the node's allocatable (from the node views the
  NodeLister gives; a node it does not know is left out of these two keys)
- ``cpu_cores``, ``memory_bytes``: raw usage, for every node metrics-server reports

A sample's timestamp is the item's ``timestamp`` (the end of metrics-server's window).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from decimal import Decimal

import msgspec

from extender.engine.model import SourceSpec
from extender.k8s.quantity import QuantityError, parse_quantity
from extender.k8s.timefmt import parse_timestamp
from extender.kube.client import KubeClient
from extender.kube.errors import ApiError, Forbidden, NotFound
from extender.load.source import MetricSource, NodeLister, Samples, SourceError
from extender.measured import Sample

PATH = "/apis/metrics.k8s.io/v1beta1/nodes"
KEYS = ("cpu", "memory", "cpu_cores", "memory_bytes")
#: percent key -> (the usage resource it divides, the raw key)
_PERCENT = {"cpu": ("cpu", "cpu_cores"), "memory": ("memory", "memory_bytes")}
ABSENT_MESSAGE = "metrics.k8s.io is not served (404): install metrics-server, or use a prometheus source"
FORBIDDEN_HINT = (
    "grant list on nodes in API group metrics.k8s.io "
    "(ClusterRole rule apiGroups: [metrics.k8s.io], resources: [nodes], verbs: [list]; "
    "deploy/components/metrics-server-source)"
)


class _Metadata(msgspec.Struct):
    name: str


class _NodeMetrics(msgspec.Struct):
    metadata: _Metadata
    timestamp: str = ""
    usage: dict[str, str] = {}


class _NodeMetricsList(msgspec.Struct):
    items: list[_NodeMetrics] = []


_decoder = msgspec.json.Decoder(_NodeMetricsList)


class MetricsServerSource(MetricSource):
    """Reads NodeMetrics; a 404 (no metrics-server) and a 403 (no RBAC) are SourceErrors the
    refresher keeps retrying on its interval: metrics-server may be installed later."""

    def __init__(self, spec: SourceSpec, nodes: NodeLister, client: KubeClient) -> None:
        super().__init__(spec, nodes)
        self.client = client

    def fetch(self, keys: Collection[str]) -> Samples:
        served = ", ".join(KEYS)
        self.partial_errors = {key: f"not a metrics-server key (it serves {served})" for key in keys if key not in KEYS}
        try:
            # The deadline bounds retries too: the whole fetch within the source's timeout.
            deadline = time.monotonic() + self.spec.timeout
            response = self.client.request("GET", PATH, timeout=self.spec.timeout, deadline=deadline)
        except NotFound as exc:
            raise SourceError(ABSENT_MESSAGE) from exc
        except Forbidden as exc:
            raise SourceError(f"{exc.message}: {FORBIDDEN_HINT}") from exc
        except ApiError as exc:
            raise SourceError(exc.message) from exc
        try:
            items = _decoder.decode(response.content).items
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SourceError(f"GET {PATH}: not a NodeMetricsList: {exc}") from exc
        views = {view.name: view for view in self.nodes()}
        raw: dict[str, dict[str, Sample]] = {"cpu_cores": {}, "memory_bytes": {}}
        percent: dict[str, dict[str, Sample]] = {"cpu": {}, "memory": {}}
        for item in items:
            try:
                at = parse_timestamp(item.timestamp).timestamp()
            except ValueError:
                continue  # no time, no freshness: this node is missing from every key
            node = views.get(item.metadata.name)
            for key, (resource, raw_key) in _PERCENT.items():
                try:
                    used = parse_quantity(item.usage[resource])
                except (KeyError, QuantityError):
                    continue
                raw[raw_key][item.metadata.name] = Sample(float(used), at)
                allocatable = node.allocatable.get(resource, Decimal(0)) if node is not None else Decimal(0)
                if allocatable > 0:
                    percent[key][item.metadata.name] = Sample(float(used * 100 / allocatable), at)
        every = {**raw, **percent}
        return {key: every[key] for key in keys if key in every}

    def close(self) -> None:
        self.client.close()
