"""Kubernetes resource quantities and a pod's effective request, on plain API dicts.

The one place the operator parses a quantity ("500m", "1Gi", "2") or adds up
what a pod asks for. GPU accounting (capacity.py, placement.py), the watch
indexes (operator/cluster/index.py) and the Deployment builder
(operator/cluster/deployment.py) all call it, so they can never disagree on
what a pod holds. Pure: no I/O, nothing outside the engine.

A pod's effective request of a resource is what the kube-scheduler counts:
the larger of the app containers plus the restartable init containers
(sidecars, ``restartPolicy: Always``, which keep running beside the app) and
the peak of any one init container (plus the sidecars started before it,
since init containers run one at a time), then plus the pod's ``overhead``.
tests/engine/test_engine_resources.py pins each part of the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

# The GPU-like extended resources found in a template when spec.gpu.resourceName is unset.
GPU_RESOURCE = re.compile(r"^(nvidia\.com/(gpu|gpu\.shared|mig-[0-9a-z.]+)|amd\.com/gpu)$")

_SUFFIXES: dict[str, Fraction | int] = {
    "": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$"
)


def quantity(value: Any) -> Fraction:
    """A resource quantity as an exact number; ValueError names a value that is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a resource quantity: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a resource quantity: {value!r}")
        return Fraction(value)
    m = _QUANTITY.match(value.strip())
    if m is None:
        raise ValueError(f"not a resource quantity: {value!r}")
    number = Fraction(m[1])
    if m[2]:
        return number * Fraction(10) ** int(m[2][1:])
    return number * _SUFFIXES[m[3] or ""]


def same_quantity(a: Any, b: Any) -> bool:
    """Whether two values are the same quantity written two ways ("1000m" and "1")."""
    try:
        return quantity(a) == quantity(b)
    except ValueError:
        return False


def units(value: Any) -> int:
    """Whole units of an extended resource (the API allows only integers for them)."""
    return math.floor(quantity(value))


def extended(resources: Mapping[str, Any] | None) -> dict[str, int]:
    """The extended resources (``vendor-domain/name``) of a requests, limits or
    allocatable map; a value that is not a quantity is left out, not raised, since
    this reads whatever the watches deliver."""
    out: dict[str, int] = {}
    for key, value in (resources or {}).items():
        if "/" in key:
            try:
                out[key] = units(value)
            except ValueError:
                continue
    return out


def _container(container: Mapping[str, Any]) -> dict[str, int]:
    res = container.get("resources") or {}
    # Extended resources: requests default to limits (and must equal them).
    return {**extended(res.get("limits")), **extended(res.get("requests"))}


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, int]:
    """Effective request of every extended resource of a pod (the rule above)."""
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for c in pod_spec.get("initContainers") or []:
        for k, v in _container(c).items():
            if c.get("restartPolicy") == "Always":
                sidecars[k] = sidecars.get(k, 0) + v
            else:
                init_peak[k] = max(init_peak.get(k, 0), v + sidecars.get(k, 0))
    app: dict[str, int] = {}
    for c in pod_spec.get("containers") or []:
        for k, v in _container(c).items():
            app[k] = app.get(k, 0) + v
    overhead = extended(pod_spec.get("overhead"))
    out: dict[str, int] = {}
    for k in {*sidecars, *init_peak, *app, *overhead}:
        total = max(app.get(k, 0) + sidecars.get(k, 0), init_peak.get(k, 0)) + overhead.get(k, 0)
        if total > 0:
            out[k] = total
    return out


def pod_request(pod_spec: Mapping[str, Any], resource: str) -> int:
    """Effective request of one resource (0 when the pod does not ask for it)."""
    return pod_requests(pod_spec).get(resource, 0)


def find_gpu_resource(pod_spec: Mapping[str, Any]) -> str | None:
    """The GPU-like extended resource a pod template asks for, if any."""
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        res = c.get("resources") or {}
        for part in ("limits", "requests"):
            for name in res.get(part) or {}:
                if GPU_RESOURCE.match(name):
                    return str(name)
    return None
