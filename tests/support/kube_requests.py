"""What a pod asks of a node, computed by the test harness on its own.

The harness does not borrow the operator's arithmetic (a bug there would then
be shared by the model and the code under test). This is the Kubernetes rule
(``PodRequests`` in k8s.io/component-helpers/resource, with sidecars as of
Kubernetes 1.29):

- a container's request for a resource is its ``requests`` entry, or its
  ``limits`` entry when no request is given (the API server defaults one to the
  other);
- regular containers run together: their requests add up;
- init containers run one at a time before them; a sidecar (an init container
  with ``restartPolicy: Always``) keeps running, so it adds to every later init
  container and to the regular containers;
- the pod asks for the larger of the two phases, plus ``spec.overhead``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]|)$")
_SUFFIX = {"": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6),
           "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6),
           "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
           "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
           "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50),
           "Ei": Fraction(2**60)}

Resources = dict[str, Fraction]


def quantity(value: Any) -> Fraction:
    """A Kubernetes quantity ("2", "500m", "1Gi", "1e3") as an exact number."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    exponent = match is not None and match.group(2)[:1] in ("e", "E")
    if match is None or (not exponent and match.group(2) not in _SUFFIX):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = match.groups()
    if exponent:
        return Fraction(number) * Fraction(10) ** int(suffix[1:])
    return Fraction(number) * _SUFFIX[suffix]


def container_requests(container: Mapping[str, Any]) -> Resources:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: quantity(v) for name, v in merged.items()}


def _add(into: Resources, more: Mapping[str, Fraction]) -> None:
    for name, v in more.items():
        into[name] = into.get(name, Fraction(0)) + v


def _max(into: Resources, other: Mapping[str, Fraction]) -> None:
    for name, v in other.items():
        into[name] = max(into.get(name, Fraction(0)), v)


def pod_requests(spec: Mapping[str, Any]) -> Resources:
    """Every resource the scheduler reserves for a pod with this spec."""
    regular: Resources = {}
    for c in spec.get("containers") or []:
        _add(regular, container_requests(c))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for c in spec.get("initContainers") or []:
        own = container_requests(c)
        if c.get("restartPolicy") == "Always":
            _add(sidecars, own)
            _max(init_peak, sidecars)
        else:
            phase = dict(sidecars)
            _add(phase, own)
            _max(init_peak, phase)
    total = dict(regular)
    _add(total, sidecars)
    _max(total, init_peak)
    _add(total, {name: quantity(v) for name, v in (spec.get("overhead") or {}).items()})
    return total


def extended_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """The extended resources (names with a '/', such as nvidia.com/gpu) of a pod;
    Kubernetes allows only whole numbers of them."""
    out: dict[str, int] = {}
    for name, v in pod_requests(spec).items():
        if "/" in name and v:
            if v.denominator != 1:
                raise ValueError(f"{name}: extended resources are whole numbers, not {v}")
            out[name] = int(v)
    return out
