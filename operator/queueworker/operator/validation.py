"""Turn a QueueWorker manifest into a spec, or into problems a person can act on.

Every problem names the field (a dotted path as in the manifest) and the rule
it broke; callers print them, put them in a SpecValid condition, or an Event.
No traceback ever reaches the user for a bad spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from queueworker.common.errors import QueueworkerError
from queueworker.operator import api
from queueworker.operator import validation_schema as schema


@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (rule: {self.rule})"


class SpecError(QueueworkerError, ValueError):
    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _rule_of(err: ErrorDetails) -> str:
    kind = str(err["type"])
    ctx = {k: v for k, v in (err.get("ctx") or {}).items() if k not in ("error",)}
    if not ctx:
        return kind
    return kind + " " + ", ".join(f"{k}={v}" for k, v in ctx.items())


def problems_from(exc: ValidationError, prefix: str = "spec",
                  cel: bool = True) -> list[SpecProblem]:
    """Problems from pydantic's errors; `cel=False` leaves out the cross-field
    rules (and list-map keys), which parse_spec takes from validation_schema."""
    out: list[SpecProblem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if err["type"] in ("cel_rule", "unique_queue") and not cel:
            continue
        if err["type"] == "cel_rule":
            out.append(
                SpecProblem(_path((*loc, str(ctx["field"])), prefix), str(ctx["message"]),
                            str(ctx["rule"]))
            )
        elif err["type"] == "unique_queue":
            msg = f"queue {ctx['name']!r} with layout {ctx['layout']!r} is listed twice"
            out.append(SpecProblem(_path((*loc, "queues"), prefix), msg,
                                   "x-kubernetes-list-map-keys [name, layout]"))
        elif err["type"] == "extra_forbidden":
            out.append(SpecProblem(_path(loc, prefix), "unknown field", "no unknown fields"))
        elif err["type"] == "missing":
            out.append(SpecProblem(_path(loc, prefix), "required field is missing", "required"))
        else:
            out.append(SpecProblem(_path(loc, prefix), str(err["msg"]), _rule_of(err)))
    return out


def _unknown(paths: list[str]) -> SpecError:
    return SpecError([SpecProblem(p, "unknown field", "no unknown fields") for p in paths])


def _server_rules(prepared: schema.Prepared) -> list[SpecProblem]:
    """What the server checks besides the schema: list-map keys, CEL (only
    without blocking errors), the scale subresource's integer."""
    data = prepared.data
    out = [SpecProblem(f"spec.queues[{i}]", "duplicate value: an earlier queue has the same "
                       "name and layout", "x-kubernetes-list-map-keys [name, layout]")
           for i in schema.duplicate_queues(data.get("queues"))]
    if "spec.replicas" in prepared.floats:
        out.append(SpecProblem("spec.replicas", "must be an integer, not a float (the scale "
                               "subresource reads it as int64)", "scale specReplicasPath"))
    if not prepared.blocking:
        out += [SpecProblem(f.path, f.message, f.rule) for f in
                schema.cel_failures(api.QueueWorkerSpec, data, "spec", prepared.floats)]
    return out


def _prepare(spec: Any) -> schema.Prepared:
    # Strict JSON-mode validation types values the way the API server does:
    # `false` is not an integer and "5" is not a number (lax mode would coerce).
    try:
        text = json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpecError([SpecProblem("spec", f"not representable as JSON: {exc}",
                                     "JSON values (finite numbers)")]) from None
    prepared = schema.prepare_spec(json.loads(text))
    if not isinstance(spec, dict) and not prepared.unknown:
        # The scale subresource's reader of spec.replicas fails too; the server says both.
        raise SpecError([
            SpecProblem("spec", f"must be an object, got {type(spec).__name__}", "type object"),
            SpecProblem("spec.replicas", "cannot be read: spec is not an object",
                        "scale specReplicasPath")])
    return prepared


def _validate(prepared: schema.Prepared) -> api.QueueWorkerSpec:
    problems = _server_rules(prepared)
    try:
        spec = api.QueueWorkerSpec.model_validate_json(json.dumps(prepared.data), strict=True)
    except ValidationError as exc:
        problems += problems_from(exc, cel=False)
    if problems:
        raise SpecError(problems)
    return spec


def parse_spec(spec: Any) -> api.QueueWorkerSpec:
    """Validate `.spec` of a QueueWorker; raises SpecError naming every problem."""
    prepared = _prepare(spec)
    if prepared.unknown:
        raise _unknown(prepared.unknown)  # the server reports these alone
    return _validate(prepared)


# The API server's rules for a custom resource's name (RFC 1123 subdomain,
# apimachinery's IsDNS1123Subdomain) and namespace (RFC 1123 label), with its words.
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_NAME_RULES = {
    "name": (_DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain must consist of lower "
             "case alphanumeric characters, '-' or '.', and must start and end with an "
             "alphanumeric character (e.g. 'example.com')"),
    "namespace": (_DNS1123_LABEL, 63, "a lowercase RFC 1123 label must consist of lower case "
                  "alphanumeric characters or '-', and must start and end with an "
                  "alphanumeric character (e.g. 'my-name')"),
}


def _metadata_problems(meta: Any) -> list[SpecProblem]:
    if not isinstance(meta, dict) or not meta.get("name"):
        return [SpecProblem("metadata.name", "required field is missing", "required")]
    out: list[SpecProblem] = []
    for key, (regex, longest, words) in _NAME_RULES.items():
        value = meta.get(key)
        if value is None or (value == "" and key == "namespace"):
            continue
        if not isinstance(value, str):
            out.append(SpecProblem(f"metadata.{key}", f"must be a string, got {value!r}",
                                   "type string"))
        elif not re.fullmatch(regex, value):
            out.append(SpecProblem(f"metadata.{key}", f"invalid value {value!r}: {words}",
                                   f"regex '{regex}'"))
        elif len(value) > longest:
            out.append(SpecProblem(f"metadata.{key}", f"must be no more than {longest} "
                                   "characters", f"maxLength {longest}"))
    return out


def parse_manifest(obj: Any) -> api.QueueWorkerSpec:
    """Validate a whole QueueWorker object (apiVersion, kind, metadata, spec), in the
    order kubectl and the API server do: a wrong kind or apiVersion stops kubectl
    before it sends anything; unknown fields stop the server before it validates."""
    if not isinstance(obj, dict):
        raise SpecError([SpecProblem("(document)", "must be a mapping", "type object")])
    problems: list[SpecProblem] = []
    if obj.get("apiVersion") != api.API_VERSION:
        problems.append(SpecProblem("apiVersion", f"must be {api.API_VERSION!r}, got "
                                    f"{obj.get('apiVersion')!r}", "enum"))
    if obj.get("kind") != api.KIND:
        problems.append(SpecProblem("kind", f"must be {api.KIND!r}, got {obj.get('kind')!r}",
                                    "enum"))
    if problems:
        raise SpecError(problems)
    undecodable = schema.metadata_decode_error(obj.get("metadata"))
    if undecodable:
        raise SpecError([SpecProblem(undecodable, "wrong type (metadata is a Kubernetes "
                                     "ObjectMeta)", "ObjectMeta field types")])
    spec = obj.get("spec")
    prepared: schema.Prepared | None = None
    try:
        prepared = None if spec is None else _prepare(spec)
    except SpecError as exc:
        problems += exc.problems
    unknown = schema.unknown_outside_spec(obj) + (prepared.unknown if prepared else [])
    if unknown:
        raise _unknown(unknown)
    problems += _metadata_problems(obj.get("metadata"))
    if spec is None:  # absent or null (pruned): the root schema requires it
        problems.append(SpecProblem("spec", "required field is missing", "required"))
    if prepared is not None:
        try:
            model = _validate(prepared)
        except SpecError as exc:
            problems += exc.problems
        else:
            if not problems:
                return model
    raise SpecError(problems)
