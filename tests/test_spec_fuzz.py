"""Hypothesis: any QueueWorker spec, however wrong, gives a spec or named problems.

Never a crash (no exception other than SpecError), and every problem names a
field under `spec` and a rule. Specs the models accept are also admitted by the
CRD (schema + CEL), so the operator never holds a spec the API server refuses.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queueworker.operator import api
from queueworker.operator.validation import SpecError, parse_spec

from support.apiserver import admit, load_crd

CRD = load_crd()

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8,
)

VALID: dict[str, Any] = {
    "redis": {"url": "redis://r:6379/0"},
    "queues": [{"name": "default"}],
    "template": {"spec": {"containers": [{"name": "w", "image": "img:1"}]}},
}

# Paths worth mutating: every leaf and object the spec has.
_PATHS = [
    ("redis",), ("redis", "url"), ("redis", "db"), ("redis", "tls"), ("queues",),
    ("queues", 0), ("queues", 0, "name"), ("queues", 0, "layout"), ("queues", 0, "weight"),
    ("template",), ("template", "spec"), ("template", "spec", "containers"),
    ("scaling",), ("scaling", "minReplicas"), ("scaling", "maxReplicas"),
    ("scaling", "policy"), ("scaling", "pollIntervalSeconds"), ("scaling", "scaleDown"),
    ("scaling", "fallbackReplicas"), ("gpu",), ("gpu", "resourceName"), ("drain",),
    ("drain", "graceSeconds"), ("drain", "deadlineMarginSeconds"), ("replicas",),
]


def _set(obj: Any, path: tuple[str | int, ...], value: Any) -> Any:
    obj = copy.deepcopy(obj)
    node = obj
    for part in path[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or len(node) <= part:
                return obj
            node = node[part]
        else:
            if not isinstance(node, dict):
                return obj
            node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if isinstance(node, list) and len(node) > last:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    return obj


def _check(spec: Any) -> api.QueueWorkerSpec | None:
    try:
        return parse_spec(spec)
    except SpecError as exc:
        problems = exc.problems
    assert problems
    for problem in problems:
        assert problem.field.startswith("spec"), problem
        assert problem.message, problem
        assert problem.rule, problem
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _json)
def test_mutated_specs_give_spec_or_named_problems(path: tuple[str | int, ...],
                                                   value: Any) -> None:
    spec = _set(VALID, path, value)
    model = _check(spec)
    if model is not None:
        obj = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "x"},
               "spec": spec}
        _, errors = admit(CRD, obj)
        assert errors == [], (spec, errors)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_arbitrary_documents_never_crash(doc: Any) -> None:
    _check(doc)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_001), st.integers(0, 10_001), st.one_of(st.none(), st.integers(0, 10_001)))
def test_replica_bounds_agree_with_crd(low: int, high: int, fallback: int | None) -> None:
    scaling: dict[str, Any] = {"minReplicas": low, "maxReplicas": high}
    if fallback is not None:
        scaling["fallbackReplicas"] = fallback
    spec = {**VALID, "scaling": scaling}
    model = _check(spec)
    obj = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "x"},
           "spec": spec}
    _, errors = admit(CRD, obj)
    assert (model is not None) == (errors == []), (scaling, errors)
