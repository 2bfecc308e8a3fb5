"""Generate the QueueWorker CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema with ``$ref``/``$defs`` and ``anyOf: [X, null]`` for
optionals; Kubernetes wants a *structural* schema: everything inlined, a
``type`` on every node, no nulls, ``x-kubernetes-preserve-unknown-fields``
where free-form objects are allowed. This module does that translation and
adds what JSON Schema cannot say (CEL rules, list-map keys, subresources,
printer columns).
"""

from __future__ import annotations

from typing import Any

import yaml

from queueworker.operator import api

# Keywords kept from pydantic's output; everything else (title, etc.) is dropped.
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].split("/")[-1]]
            merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Turn one resolved pydantic schema node into a structural CRD schema node."""
    node = _unwrap(node)
    out = _keywords(node)
    if node.get("type") == "object" or "properties" in node:
        _object(node, out)
    elif node.get("type") == "array":
        out["items"] = _structural(node["items"])
        _list_keys(node, out)
    return out


def _unwrap(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` (an optional) and ``allOf: [X]`` (a described ref) -> X."""
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express union in a structural schema: {node}")
        inner = dict(variants[0])
        for k in ("description", "default"):
            if k in node:
                inner[k] = node[k]
        node = inner
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = dict(node["allOf"][0])
        inner.update({k: v for k, v in node.items() if k != "allOf"})
        node = inner
    return node


def _keywords(node: dict[str, Any]) -> dict[str, Any]:
    """The kept keywords of one node, written the way OpenAPI v3.0 wants them."""
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    # JSON Schema 2020 writes exclusive bounds as numbers; OpenAPI v3.0 (what
    # the API server speaks) wants the bound plus a boolean flag.
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(flag), int | float) and not isinstance(out[flag], bool):
            out[bound] = out[flag]
            out[flag] = True
    if "default" in out:
        if out["default"] is None:
            del out["default"]
        elif isinstance(out["default"], dict):
            # The API server fills nested defaults into an empty object; a full
            # copy here would duplicate (and could contradict) the children's.
            out["default"] = {}
    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in node and "type" not in out:
        out["type"] = "string"
    return out


def _object(node: dict[str, Any], out: dict[str, Any]) -> None:
    """Properties, required, free-form maps and CEL rules of an object node, into `out`."""
    out["type"] = "object"
    props = node.get("properties", {})
    if props:
        out["properties"] = {k: _structural(v) for k, v in props.items()}
    required = node.get("required")
    if required:
        out["required"] = list(required)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out["additionalProperties"] = _structural(extra)
    elif extra is True or (not props and extra is None):
        out["x-kubernetes-preserve-unknown-fields"] = True
    rules = node.get("x-kubernetes-validations")
    if rules:
        out["x-kubernetes-validations"] = rules
    _list_keys(node, out)


def _list_keys(node: dict[str, Any], out: dict[str, Any]) -> None:
    for key in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys"):
        if key in node:
            out[key] = node[key]


def _with_cel(model: type[api.Model], schema: dict[str, Any]) -> None:
    """Attach each model's CEL rules to its definition in pydantic's $defs."""
    if model.CEL_RULES:
        schema["x-kubernetes-validations"] = [r.as_crd() for r in model.CEL_RULES]


def _collect_models(root: type[api.Model]) -> dict[str, type[api.Model]]:
    found: dict[str, type[api.Model]] = {}

    def walk(m: type[api.Model]) -> None:
        if m.__name__ in found:
            return
        found[m.__name__] = m
        for field in m.model_fields.values():
            for t in api.model_types(field.annotation):
                walk(t)

    walk(root)
    return found


def spec_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of `.spec` (also used by tests and validate)."""
    raw = api.QueueWorkerSpec.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    models = _collect_models(api.QueueWorkerSpec)
    for name, model in models.items():
        target = raw if model is api.QueueWorkerSpec else defs.get(name)
        if target is not None:
            _with_cel(model, target)
    # Queues are a map keyed by (name, layout): the API server rejects duplicates.
    queues = raw["properties"]["queues"]
    queues["x-kubernetes-list-type"] = "map"
    queues["x-kubernetes-list-map-keys"] = ["name", "layout"]
    return _structural(_resolve(raw, defs))


def status_schema() -> dict[str, Any]:
    raw = api.QueueWorkerStatus.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    conditions = raw["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    out = _structural(_resolve(raw, defs))
    # Status is written only by the operator; keep room for fields added later.
    out["x-kubernetes-preserve-unknown-fields"] = True
    out["properties"]["engineMemory"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Scaling-engine memory, kept so an operator restart does not flap.",
    }
    return out


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Backlog", "type": "integer", "jsonPath": ".status.backlog",
     "description": "Jobs waiting plus in flight, all queues."},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "Current", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "GPU-Limited", "type": "boolean", "jsonPath": ".status.gpuLimited"},
    {"name": "Oldest", "type": "number", "jsonPath": ".status.oldestJobAgeSeconds",
     "priority": 1, "description": "Age in seconds of the oldest waiting job."},
    {"name": "Reason", "type": "string", "jsonPath": ".status.lastScaleReason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {
                "app.kubernetes.io/name": "queueworker",
                "app.kubernetes.io/part-of": "queueworker",
            },
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "QueueWorker runs queue workers as a Deployment "
                            "scaled from Redis queue depth, capped by free GPUs, drained "
                            "gracefully.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


HEADER = "# Generated by `queueworker crd` from queueworker/operator/api.py. Do not edit.\n"


def render() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)
