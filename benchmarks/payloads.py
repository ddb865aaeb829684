"""Realistic requests built from the recorded cluster: its nodes replicated under new names."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from tests.conftest import FIXTURES

SOURCE = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00001-filter-web-1.request.json"


def _go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (what kube-scheduler sends)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def recorded() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The recorded pod (web-1) and the recorded cluster's 8 nodes, as kube-scheduler sent them."""
    request = json.loads(SOURCE.read_bytes())
    return request["Pod"], request["Nodes"]["items"]


def node_name(index: int) -> str:
    return f"node-{index:05d}"


def replicate(count: int) -> list[dict[str, Any]]:
    """``count`` nodes cycling through the recorded ones, each with its own name and uid."""
    _, templates = recorded()
    nodes = []
    for index in range(count):
        node = copy.deepcopy(templates[index % len(templates)])
        name = node_name(index)
        node["metadata"]["name"] = name
        node["metadata"]["uid"] = f"00000000-0000-4000-8000-{index:012d}"
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        nodes.append(node)
    return nodes


@dataclass(frozen=True)
class Payload:
    """One request body and what the baseline needs to reproduce a naive extender's work."""

    nodes: int
    body: bytes
    #: the filter reply a naive extender would json.dumps (every node passing)
    filter_reply: dict[str, Any] | None


def full_nodes(count: int) -> Payload:
    pod, _ = recorded()
    items = replicate(count)
    body = _go_json({"Pod": pod, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None})
    reply = {
        "Nodes": {"metadata": {}, "items": items},
        "NodeNames": None,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }
    return Payload(count, body, reply)


def names(count: int, cache_size: int) -> Payload:
    """A names-mode request for ``count`` of the ``cache_size`` cached nodes (spread evenly,
    as kube-scheduler's round-robin search picks them)."""
    pod, _ = recorded()
    step = max(1, cache_size // count)
    chosen = [node_name(i) for i in range(0, cache_size, step)][:count]
    return Payload(count, _go_json({"Pod": pod, "Nodes": None, "NodeNames": chosen}), None)


def preempt_meta(candidates: int, cache_size: int) -> bytes:
    """A names-mode preempt request: one victim UID per candidate node."""
    pod, _ = recorded()
    step = max(1, cache_size // candidates)
    meta = {
        node_name(i): {"Pods": [{"UID": f"victim-{i}"}], "NumPDBViolations": 0}
        for i in range(0, cache_size, step)
    }
    return _go_json({"Pod": pod, "NodeNameToVictims": None, "NodeNameToMetaVictims": dict(list(meta.items())[:candidates])})


def cluster_nodes(count: int) -> list[dict[str, Any]]:
    """Node objects for the fake API server (names mode), as the API server serves them."""
    return replicate(count)


NAMES_MODE = FIXTURES / "kube-scheduler-v1.30" / "node-cache"


def recorded_names_mode(verb: str, count: int) -> bytes:
    """The recorded names-mode ``verb`` request (pod gpu-1) with ``NodeNames`` set to the
    first ``count`` cached node names (``node-00000`` on)."""
    (path,) = sorted(NAMES_MODE.glob(f"*-{verb}-*.request.json"))
    request = json.loads(path.read_bytes())
    request["NodeNames"] = [node_name(i) for i in range(count)]
    return _go_json(request)
