"""``GET /openapi.json``: an OpenAPI 3.1 description of the whole HTTP API.

The four verbs under the configured prefix speak kube-scheduler's extender protocol
(protocol.md §1: PascalCase envelope keys, Kubernetes objects inside); the Pod and Node
schemas come from the codec, derived from the types that decode them. The probes and this
document are plain JSON. Every error is ``{"error": "<message>"}``; any path not listed
here answers 404 with it, any method not listed 405 with an ``Allow`` header.

Envelopes allow keys they do not list (kube-scheduler's decoder ignores unknown keys, and
so do we); the case-insensitive spellings humans may use (``pod``, ``nodeNames``) are
accepted too but not described.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from extender import __version__
from extender.codec.common import encode_json
from extender.codec.objects import object_schemas

_REF = "#/components/schemas/{name}"
JSONType = dict[str, Any]


def _ref(name: str) -> JSONType:
    return {"$ref": _REF.format(name=name)}


def _nullable(schema: JSONType) -> JSONType:
    return {"anyOf": [schema, {"type": "null"}]}


def _map(values: JSONType, keys: JSONType | None = None) -> JSONType:
    schema: JSONType = {"type": "object", "additionalProperties": values}
    if keys:
        schema["propertyNames"] = keys
    return schema


def _strict(properties: JSONType, required: list[str] | None = None) -> JSONType:
    """An object we answer with: exactly these keys."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


_NAME: JSONType = {"type": "string", "maxLength": 253}
_NAMESPACE: JSONType = {"type": "string", "maxLength": 63}
_INT64: JSONType = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
_STRINGS: JSONType = _map({"type": "string"})


def _protocol_schemas(pod: JSONType, node: JSONType) -> JSONType:
    """The extender protocol's envelopes (protocol.md §1) around ``pod`` and ``node``."""
    node_list = {
        "type": "object",
        # kube-scheduler sends {} (a ListMeta); it is not read, so any value passes
        "properties": {"metadata": {}, "items": _nullable({"type": "array", "items": node})},
    }
    victims = {
        "type": "object",
        "properties": {
            "Pods": _nullable({"type": "array", "items": {"type": "object", "properties": {"metadata": _nullable({"type": "object", "properties": {"uid": {"type": "string"}}})}}}),
            "NumPDBViolations": _INT64,
        },
    }
    meta_victims = {
        "type": "object",
        "properties": {
            "Pods": _nullable({"type": "array", "items": {"type": "object", "properties": {"UID": {"type": "string"}}}}),
            "NumPDBViolations": _INT64,
        },
    }
    return {
        "Error": {**_strict({"error": {"type": "string", "minLength": 1}}), "description": "What was wrong with the request."},
        "NodeList": node_list,
        "ExtenderArgs": {
            "type": "object",
            "description": "filter and prioritize: the pod and the candidate nodes, as full Node objects (Nodes) or by name (NodeNames, nodeCacheCapable).",
            "properties": {
                "Pod": pod,
                "Nodes": _nullable({"anyOf": [_ref("NodeList"), {"type": "array", "items": node}]}),
                "NodeNames": _nullable({"type": "array", "items": _NAME}),
            },
            "required": ["Pod"],
            "anyOf": [
                {"required": ["Nodes"], "properties": {"Nodes": {"not": {"type": "null"}}}},
                {"required": ["NodeNames"], "properties": {"NodeNames": {"type": "array"}}},
            ],
        },
        "ExtenderFilterResult": _strict(
            {
                "Nodes": _nullable(
                    _strict({"metadata": {"type": "object"}, "items": {"type": "array", "items": {"type": "object"}}})
                ),
                "NodeNames": _nullable({"type": "array", "items": {"type": "string"}}),
                "FailedNodes": _STRINGS,
                "FailedAndUnresolvableNodes": _STRINGS,
                "Error": {"type": "string"},
            }
        ),
        "HostPriorityList": {
            "type": "array",
            "items": _strict({"Host": {"type": "string"}, "Score": {"type": "integer", "minimum": 0, "maximum": 10}}),
        },
        "Victims": victims,
        "MetaVictims": meta_victims,
        "ExtenderPreemptionArgs": {
            "type": "object",
            "description": "preempt: the pod and the scheduler's candidate nodes with their victims, as full pods (NodeNameToVictims) or UIDs (NodeNameToMetaVictims, nodeCacheCapable).",
            "properties": {
                "Pod": pod,
                "NodeNameToVictims": _nullable(_map(_nullable(_ref("Victims")), _NAME)),
                "NodeNameToMetaVictims": _nullable(_map(_nullable(_ref("MetaVictims")), _NAME)),
            },
            "required": ["Pod"],
            "anyOf": [
                {"required": ["NodeNameToVictims"], "properties": {"NodeNameToVictims": {"type": "object"}}},
                {"required": ["NodeNameToMetaVictims"], "properties": {"NodeNameToMetaVictims": {"type": "object"}}},
            ],
        },
        "ExtenderPreemptionResult": _strict(
            {
                "NodeNameToMetaVictims": _map(
                    _strict({"Pods": {"type": "array", "items": _strict({"UID": {"type": "string"}})}, "NumPDBViolations": _INT64})
                )
            }
        ),
        "ExtenderBindingArgs": {
            "type": "object",
            "properties": {
                "PodName": {**_NAME, "minLength": 1},
                "PodNamespace": {**_NAMESPACE, "minLength": 1},
                "PodUID": {"type": "string", "minLength": 1},
                "Node": {**_NAME, "minLength": 1},
            },
            "required": ["PodName", "PodNamespace", "PodUID", "Node"],
        },
        "ExtenderBindingResult": _strict({"Error": {"type": "string"}}),
    }


def _probe_schemas() -> JSONType:
    rule = {"name": {"type": "string"}, "type": {"type": "string"}, "mode": {"type": "string", "enum": ["enforce", "shadow"]}}
    return {
        "Health": {
            "type": "object",
            "properties": {
                "status": {"const": "ok"},
                "caches": {"type": "object"},
                # per metric source: lastSuccessAgeSeconds, lastError, consecutiveFailures,
                # fetchSeconds, series and staleNodes per key, partialErrors (never readiness)
                "sources": {"type": "object"},
            },
            "required": ["status"],
            "additionalProperties": False,
        },
        "Readiness": _strict({"status": {"enum": ["ready", "not ready"]}, "detail": {"type": "string"}}),
        "Version": _strict(
            {
                "version": {"type": "string"},
                # policy hot reload, per worker (README "Changing the policy")
                "worker": {"type": "integer", "description": "pid of the worker that answered"},
                "loadedAt": {"type": "string", "format": "date-time"},
                "lastReload": _nullable(
                    _strict(
                        {
                            "time": {"type": "string", "format": "date-time"},
                            "trigger": {"enum": ["file", "signal"]},
                            "ok": {"type": "boolean"},
                            "digest": {"type": "string"},
                            "error": {"type": "string"},
                            "problems": {"type": "array", "items": {"type": "string"}},
                        },
                        required=["time", "trigger", "ok", "digest"],
                    )
                ),
                "reloads": _strict({"succeeded": {"type": "integer"}, "failed": {"type": "integer"}}),
                "policy": _strict(
                    {
                        "source": {"type": "string"},
                        "digest": {"type": "string"},
                        "predicates": {"type": "array", "items": _strict(rule)},
                        "priorities": {"type": "array", "items": _strict({**rule, "weight": {"type": "integer", "minimum": 1}})},
                        "bind": {"type": "boolean"},
                    }
                ),
            }
        ),
    }


def _decision_schemas() -> JSONType:
    """POST {prefix}/explain's answer: decision records (README "Explaining decisions")."""
    record = {
        "type": "object",
        "description": "What the extender decided on one call, and why (the decision record).",
        "properties": {
            "verb": {"enum": ["filter", "prioritize", "preempt", "bind"]},
            "time": {"type": "string"},
            "pod": _strict({"namespace": {"type": "string"}, "name": {"type": "string"}, "uid": {"type": "string"}}),
            "mode": {"enum": ["names", "nodes"]},
            "policy": {"type": "string"},
            "nodes": {"type": "integer", "minimum": 0},
            "outcome": {"enum": ["answered", "out-of-scope", "error"]},
            "tookMs": {"type": "number", "minimum": 0},
            "passed": {"type": "integer", "minimum": 0},
            "rejected": {"type": "array", "items": {"type": "object", "required": ["rule", "reason", "count", "nodes"]}},
            "best": _nullable({"type": "object", "required": ["node", "score", "rules"]}),
            "table": {"type": "object", "required": ["rules", "rows", "truncated"]},
        },
        "required": ["verb", "time", "pod", "mode", "policy", "nodes", "outcome", "tookMs"],
    }
    both = _strict(
        {
            "filter": _ref("DecisionRecord"),
            "prioritize": _nullable(_ref("DecisionRecord")),
            "winner": _nullable({"type": "string"}),
        }
    )
    return {"DecisionRecord": record, "Explanation": {"anyOf": [_ref("DecisionRecord"), both]}}


def _explain() -> JSONType:
    return {
        "post": {
            "summary": "explain filter and/or prioritize of a request: every rule on every node",
            "operationId": "explain",
            "parameters": [
                {
                    "name": "verb",
                    "in": "query",
                    "required": False,
                    "description": "filter, prioritize, or both (default): filter, then prioritize of the nodes it passed.",
                    "schema": {"enum": ["filter", "prioritize", "both"]},
                }
            ],
            "requestBody": {"required": True, "content": _json_content(_ref("ExtenderArgs"))},
            "responses": {
                "200": {
                    "description": "The decision record with its table (both: one per verb, and the winner).",
                    "content": _json_content(_ref("Explanation")),
                },
                **_errors("400", "405", "413", "415"),
            },
        }
    }


_ERRORS = {
    "400": "The body is not a valid request; the message names the field and the problem.",
    "404": "No such path.",
    "405": "The path does not take this method; Allow names the one it does.",
    "413": "The body is larger than --max-body-bytes.",
    "415": "A Content-Type other than application/json (a request without one is read as JSON).",
}


def _json_content(schema: JSONType) -> JSONType:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> JSONType:
    return {code: {"$ref": f"#/components/responses/{code}"} for code in codes}


def _verb(summary: str, request: str, reply: str, reply_description: str) -> JSONType:
    return {
        "post": {
            "summary": summary,
            "operationId": summary.split()[0],
            "requestBody": {"required": True, "content": _json_content(_ref(request))},
            "responses": {
                "200": {"description": reply_description, "content": _json_content(_ref(reply))},
                **_errors("400", "405", "413", "415"),
            },
        }
    }


def _get(operation_id: str, summary: str, schema: str, extra: JSONType | None = None) -> JSONType:
    responses: JSONType = {"200": {"description": summary, "content": _json_content(_ref(schema))}}
    responses.update(extra or {})
    responses.update(_errors("405"))
    return {"get": {"summary": summary, "operationId": operation_id, "responses": responses}}


def _metrics() -> JSONType:
    """``GET /metrics``: Prometheus' text exposition format, not JSON (README "Metrics")."""
    summary = "Prometheus metrics of every worker (text exposition format 0.0.4)."
    responses: JSONType = {"200": {"description": summary, "content": {"text/plain": {"schema": {"type": "string"}}}}}
    responses.update(_errors("405"))
    return {"get": {"summary": summary, "operationId": "metrics", "responses": responses}}


def openapi_document(prefix: str) -> JSONType:
    """The OpenAPI 3.1 document of this server with the verbs under ``prefix`` (normalised:
    one leading slash, no trailing one, ``""`` for the root)."""
    pod, node, objects = object_schemas(_REF)
    schemas = {**objects, **_protocol_schemas(pod, node), **_probe_schemas(), **_decision_schemas()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "extender: a Kubernetes scheduler extender",
            "version": __version__,
            "description": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        },
        "paths": {
            f"{prefix}/filter": _verb(
                "filter the candidate nodes", "ExtenderArgs", "ExtenderFilterResult",
                "Passing nodes (Node objects echoed as received, or names), the others with a reason each.",
            ),
            f"{prefix}/prioritize": _verb(
                "prioritize the candidate nodes", "ExtenderArgs", "HostPriorityList",
                "A score 0..10 for every node, in request order.",
            ),
            f"{prefix}/preempt": _verb(
                "preempt: keep the candidates the policy allows", "ExtenderPreemptionArgs", "ExtenderPreemptionResult",
                "The candidates kept, victims as UIDs.",
            ),
            f"{prefix}/bind": _verb(
                "bind the pod to the node", "ExtenderBindingArgs", "ExtenderBindingResult",
                "Error is empty on success.",
            ),
            f"{prefix}/explain": _explain(),
            "/healthz": _get("healthz", "Alive; the caches' sizes and ages, the metric sources' state.", "Health"),
            "/readyz": _get(
                "readyz", "Ready to answer.", "Readiness",
                {"503": {"description": "Not ready yet (the node cache's first list).", "content": _json_content(_ref("Readiness"))}},
            ),
            "/version": _get("version", "The version and the policy this replica runs.", "Version"),
            "/openapi.json": _get("openapi", "This document.", "OpenAPI"),
            "/metrics": _metrics(),
        },
        "components": {
            "schemas": {**schemas, "OpenAPI": {"type": "object", "required": ["openapi", "paths"]}},
            "responses": {
                code: {"description": text, "content": _json_content(_ref("Error"))} for code, text in _ERRORS.items()
            },
        },
    }


def openapi_blueprint(prefix: str) -> Blueprint:
    """``GET /openapi.json``, built once."""
    bp = Blueprint("openapi", __name__)
    document = encode_json(openapi_document(prefix))

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(document, mimetype="application/json")

    return bp
