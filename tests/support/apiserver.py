"""What the Kubernetes API server does with a custom resource, for tests.

No API server runs here, so this applies a CRD's structural schema the way
kube-apiserver does on create: defaulting, OpenAPI validation (jsonschema),
strict field validation (kubectl's default --validate=strict rejects unknown
fields) and the CEL rules in x-kubernetes-validations (cel-python).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def load_crd(path: Path | None = None) -> dict[str, Any]:
    with open(path or ROOT / "crds" / "queueworker.yaml", encoding="utf-8") as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def object_schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def prune_nulls(obj: Any) -> Any:
    """The API server drops null values of non-nullable fields before defaulting
    (CRD docs, "Defaulting and Nullable"); none of our fields is nullable."""
    if isinstance(obj, dict):
        return {k: prune_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [prune_nulls(v) for v in obj]
    return obj


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    if isinstance(obj, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = apply_defaults(sub, obj[name])
    elif isinstance(obj, list) and schema.get("type") == "array":
        return [apply_defaults(schema["items"], item) for item in obj]
    return obj


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown fields where the schema does not preserve them."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("type") == "object":
        if "properties" in schema:
            out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" in schema:
            out["additionalProperties"] = _strict(schema["additionalProperties"])
        elif not schema.get("x-kubernetes-preserve-unknown-fields") and "properties" in schema:
            out["additionalProperties"] = False
    if schema.get("type") == "array" and "items" in schema:
        out["items"] = _strict(schema["items"])
    return out


def _cel_errors(schema: dict[str, Any], obj: Any, path: str) -> list[str]:
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(obj)})):
            errors.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']} "
                          f"(rule: {rule['rule']})")
    if isinstance(obj, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name in obj:
                errors += _cel_errors(sub, obj[name], f"{path}.{name}")
    if isinstance(obj, list) and schema.get("type") == "array":
        for i, item in enumerate(obj):
            errors += _cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def _list_map_errors(schema: dict[str, Any], obj: Any, path: str) -> list[str]:
    errors: list[str] = []
    if isinstance(obj, list) and schema.get("x-kubernetes-list-type") == "map":
        keys = schema["x-kubernetes-list-map-keys"]
        seen = set()
        for i, item in enumerate(obj):
            k = tuple(item.get(key) for key in keys)
            if k in seen:
                errors.append(f"{path}[{i}]: Duplicate value: {dict(zip(keys, k, strict=True))}")
            seen.add(k)
    if isinstance(obj, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name in obj:
                errors += _list_map_errors(sub, obj[name], f"{path}.{name}")
    return errors


def admit(crd: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Default and validate `obj`; returns the defaulted object and the errors."""
    schema = object_schema(crd)
    obj = apply_defaults(schema, prune_nulls(copy.deepcopy(obj)))
    validator = jsonschema.Draft4Validator(_strict(schema))
    errors = [
        f"{'.'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in validator.iter_errors(obj)
    ]
    if not errors:  # the API server runs CEL only on schema-valid objects
        errors += _cel_errors(schema, obj, "")
        errors += _list_map_errors(schema, obj, "")
    return obj, errors
