"""``extender explain``: a policy's decision on a request, as a table, without a server.

The request is a filter/prioritize body (``ExtenderArgs``: a recorded fixture, a file, or
stdin). It is answered by an :class:`~extender.service.ExtenderService` as a server would
answer it (:meth:`~extender.service.ExtenderService.explain`), names resolved through
``--nodes`` (NodeList files, as the node cache would hold them) or, without, unknown as a
server without a node cache would have them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from msgspec import Raw

from extender.codec.common import WireError, decode
from extender.codec.kube_api import decode_list
from extender.decisions.log import encode_record
from extender.decisions.render import render
from extender.kube.stores import NodeStore
from extender.policy import PolicyError, load_policy
from extender.service import ExplainVerb, ExtenderService, ServiceOptions
from extender.view import NodeView


def _verb(args: argparse.Namespace) -> ExplainVerb:
    if args.verb:
        verb: ExplainVerb = args.verb
        return verb
    name = Path(args.request).name
    for candidate in ("filter", "prioritize"):
        if f"-{candidate}-" in name or name.startswith(f"{candidate}"):
            return "filter" if candidate == "filter" else "prioritize"
    return "both"


def _nodes(paths: list[str]) -> NodeStore:
    """The nodes of NodeList files (API list pages), or of full-node requests' ``Nodes``."""
    views: dict[str, NodeView] = {}
    for path in paths:
        data = Path(path).read_bytes()
        envelope = decode(data, dict[str, Raw], path)
        items = decode_list(envelope["Nodes"]).items if "Nodes" in envelope else decode_list(data).items
        for raw in items:
            name, view = NodeStore.decode(raw)
            if view is not None:
                views[name] = view
    store = NodeStore()
    store.replace(views)
    return store


def run(args: argparse.Namespace) -> int:
    """``extender explain``: 0, or 1 (policy) / 2 (request, nodes) with the problem on stderr."""
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"extender explain: {exc}", file=sys.stderr)
        return 1
    try:
        body = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
        nodes = _nodes(args.nodes) if args.nodes else None
    except (OSError, WireError) as exc:
        print(f"extender explain: {exc}", file=sys.stderr)
        return 2
    try:
        keys = set(decode(body, dict[str, Raw], "body"))
    except WireError as exc:
        print(f"extender explain: {args.request}: {exc}", file=sys.stderr)
        return 2
    if keys & {"NodeNameToVictims", "NodeNameToMetaVictims", "PodUID", "PodName"}:
        print("extender explain: REQUEST must be a filter/prioritize body (kube-scheduler's ExtenderArgs)", file=sys.stderr)
        return 2
    service = ExtenderService(policy, nodes=nodes, options=ServiceOptions(unknown_nodes=args.unknown_nodes))
    try:
        explained = service.explain(body, _verb(args))
    except WireError as exc:
        print(f"extender explain: {args.request}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json.loads(encode_record(explained)), indent=2))
    else:
        sys.stdout.write(f"policy {policy.source}\n{render(explained)}")
    return 0
