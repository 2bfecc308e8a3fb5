"""What the API server does to a QueueWorker before and around validating it.

`queueworker validate` must refuse what `kubectl apply` refuses and name the
same field; tests/cluster/e2e_validation.py checks that against a real
kube-apiserver. These are the steps of the server that the pydantic models
alone do not reproduce, each found by that test:

- Unknown fields (kubectl's default `--validate=strict`): the server walks the
  object along the CRD's structural schema like its pruning does and, if any
  key is unknown, answers with those keys only and checks nothing else. A key
  under a value of the wrong type counts (an object given for an integer: its
  keys are unknown), so the path can go below the field.
- `metadata` is decoded into Go's ObjectMeta first: a value of the wrong type
  there (`labels: {a: 1}`, `name: 5`) stops everything with that field alone.
- `null` for a field that is not nullable (none of ours is) is dropped before
  defaulting: `scaling: null` means "absent", not "wrong type".
- A JSON number with a fraction part (`2.0`) passes the schema's `type:
  integer` when it is integral. CEL, though, sees a float: a rule that reads
  such a field fails to evaluate ("expected int, got float64"), named at the
  object that carries the rule; and the scale subresource refuses a float
  `spec.replicas`.
- CEL rules run only without a "blocking" error (a wrong type, a missing
  required field, a value outside an enum, too long a string, too many items),
  and every failing rule of an object is reported, not only the first.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from queueworker.common.errors import QueueworkerError
from queueworker.operator import api, crd

# Keys of ObjectMeta (k8s.io/apimachinery metav1.ObjectMeta), what strict
# decoding accepts under `metadata`.
OBJECT_META = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})
ROOT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int, float), "number": (int, float),
}


@functools.cache
def spec_schema() -> dict[str, Any]:
    return crd.spec_schema()


@dataclass
class Prepared:
    """The spec as the server validates it, and what the walk found on the way."""

    data: Any
    unknown: list[str] = field(default_factory=list)
    floats: set[str] = field(default_factory=set)
    blocking: bool = False  # an error that keeps the server from running CEL


_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER


def json_integer(value: float) -> bool:
    """Whether the server's schema check takes a float for `type: integer`: as
    go-openapi's conv.IsFloat64AJSONInteger, within 2^53 and integral up to a
    relative error of 1e-9 (so 961442826.5 passes the type check, 1.5 does not)."""
    if not math.isfinite(value) or abs(value) > _SAFE_INTEGER:
        return False
    rounded = round(value)
    if value == rounded:
        return True
    return rounded != 0 and abs(value - rounded) < 1e-9 * abs(rounded)


def _type_ok(value: Any, kind: str | None) -> bool:
    if kind is None:
        return True
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer" and isinstance(value, float):
        return json_integer(value)
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))


def _walk_object(x: dict[str, Any], s: dict[str, Any], path: str, out: Prepared) -> None:
    props: dict[str, Any] = s.get("properties") or {}
    extra = s.get("additionalProperties")
    keep = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    for key in list(x):
        sub = props.get(key) or (extra if isinstance(extra, dict) else None)
        if sub is None:
            if not keep:
                out.unknown.append(f"{path}.{key}")
            continue
        if x[key] is None:
            del x[key]  # not nullable: pruned, then defaulted or missing
            continue
        x[key] = _walk(x[key], sub, f"{path}.{key}", out)
    # Checked after defaulting: a required field with a default is never missing.
    if any(key not in x and "default" not in props.get(key, {}) for key in s.get("required", ())):
        out.blocking = True


def _blocks(x: Any, s: dict[str, Any]) -> bool:
    """The errors the server calls blocking for CEL (apiextensions' hasBlockingErr:
    wrong type, required, enum, maxLength, maxItems); minimum, pattern, minLength
    and the like are not, and CEL still runs beside them."""
    if not _type_ok(x, s.get("type")):
        return True
    if isinstance(x, str):
        return bool(("enum" in s and x not in s["enum"]) or len(x) > s.get("maxLength", len(x)))
    if isinstance(x, list):
        return bool(len(x) > s.get("maxItems", len(x)))
    return False


def _walk(x: Any, s: dict[str, Any] | None, path: str, out: Prepared) -> Any:
    """One node: record unknown keys, drop nulls, make integral floats ints."""
    if s is not None and _blocks(x, s):
        out.blocking = True
    if isinstance(x, dict):
        if s is None or (s.get("type") not in (None, "object")):
            out.unknown.extend(f"{path}.{key}" for key in x)
        else:
            _walk_object(x, s, path, out)
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        if items is None and s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
            return x  # the server's pruning skips below a node that keeps unknown fields
        for i, item in enumerate(x):
            x[i] = _walk(item, items, f"{path}[{i}]", out)
    elif s is not None and s.get("type") == "integer" and isinstance(x, float):
        out.floats.add(path)
        if x.is_integer():
            return int(x)
    return x


def prepare_spec(spec: Any) -> Prepared:
    """Walk a (JSON-decoded, so private) copy of `.spec`; changes it in place."""
    out = Prepared(spec)
    _walk(spec, spec_schema(), "spec", out)
    return out


# Typed fields of ObjectMeta (the rest is never written by hand).
_META_TYPES: dict[str, str] = {
    **dict.fromkeys(("name", "generateName", "namespace", "uid", "resourceVersion",
                     "selfLink", "creationTimestamp", "deletionTimestamp"), "string"),
    **dict.fromkeys(("generation", "deletionGracePeriodSeconds"), "int64"),
    **dict.fromkeys(("labels", "annotations"), "map[string]string"),
    "finalizers": "[]string",
}


def _decodes(value: Any, go_type: str) -> bool:
    if value is None:
        return True  # JSON null decodes to Go's zero value
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "int64":
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type == "[]string":
        return isinstance(value, list) and all(v is None or isinstance(v, str) for v in value)
    return isinstance(value, dict) and all(v is None or isinstance(v, str)
                                           for v in value.values())


def metadata_decode_error(meta: Any) -> str | None:
    """The field the server cannot decode into ObjectMeta: Go's encoding/json
    names the first mismatch in document order, and nothing else is checked."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return "metadata"
    for key, value in meta.items():
        go_type = _META_TYPES.get(key)
        if go_type is not None and not _decodes(value, go_type):
            return f"metadata.{key}"
    return None


def unknown_outside_spec(obj: dict[str, Any]) -> list[str]:
    """Unknown keys at the top level and under `metadata`."""
    out = [key for key in obj if key not in ROOT_KEYS]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out += [f"metadata.{key}" for key in meta if key not in OBJECT_META]
    return out


# ------------------------------------------------------------------------ CEL


class _FloatReadError(QueueworkerError):
    """A CEL rule read an integer field that holds a float."""


class _Fields:
    """A model's fields read from the raw object, defaulted like the server does
    before CEL runs, remembering the float-valued ones."""

    def __init__(self, model: type[api.Model], raw: dict[str, Any], floats: set[str]) -> None:
        self._model, self._raw, self._floats = model, raw, floats

    def __getattr__(self, name: str) -> Any:
        info = self._model.model_fields[name]
        alias = info.alias or name
        if alias in self._floats:
            raise _FloatReadError(alias)
        if alias in self._raw:
            return self._raw[alias]
        return info.get_default(call_default_factory=True)


@dataclass(frozen=True)
class CelFailure:
    path: str  # the field the server names
    message: str
    rule: str


def _rules_of(model: type[api.Model], raw: dict[str, Any], path: str,
              floats: set[str]) -> list[CelFailure]:
    here = {key for key in raw if f"{path}.{key}" in floats}
    fields = _Fields(model, raw, here)
    out: list[CelFailure] = []
    for cel in model.CEL_RULES:
        try:
            holds = bool(cel.check(fields))
        except _FloatReadError:
            out.append(CelFailure(path, "invalid data, expected int, got float64 evaluating "
                                  f"rule: {cel.message}", cel.rule))
            continue
        if not holds:
            out.append(CelFailure(f"{path}.{cel.field}", cel.message, cel.rule))
    return out


def cel_failures(model: type[api.Model], raw: Any, path: str,
                 floats: set[str]) -> list[CelFailure]:
    """Every CEL rule that fails or cannot be evaluated, over the whole tree.
    Call only without blocking errors (the server skips CEL then)."""
    if not isinstance(raw, dict):
        return []
    out = _rules_of(model, raw, path, floats)
    for name, info in model.model_fields.items():
        alias = info.alias or name
        sub = raw.get(alias)
        for child in api.model_types(info.annotation):
            if isinstance(sub, dict):
                out += cel_failures(child, sub, f"{path}.{alias}", floats)
            elif isinstance(sub, list):
                for i, item in enumerate(sub):
                    out += cel_failures(child, item, f"{path}.{alias}[{i}]", floats)
    return out


def duplicate_queues(queues: Any) -> list[int]:
    """Index of the first repeat of each list-map key (name, layout; layout
    defaulted), as the server reports them (a third copy is not named again).
    A missing key counts as a value: two queues without a name are duplicates."""
    seen: set[str] = set()
    named: set[str] = set()
    out: list[int] = []
    items = queues if isinstance(queues, list) else []
    if any(item is not None and not isinstance(item, dict) for item in items):
        return []  # the server stops at an item that is not an object (named already)
    for i, item in enumerate(items):
        # A null item (not defaulted: its key is empty) repeats another null item.
        key = "null" if item is None else json.dumps(
            [item.get("name"), item.get("layout", api.QueueLayout.native.value)])
        if key in seen and key not in named:
            out.append(i)
            named.add(key)
        seen.add(key)
    return out
