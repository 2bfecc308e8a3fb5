"""Pod requests as the harness computes them (support/kube_requests.py).

The harness schedules pods with its own implementation of the Kubernetes rule,
not the operator's, so a bug in one is not hidden by the other; the property
test below checks that the two agree on any pod.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queueworker.engine import resources

from support.kube_requests import extended_requests, pod_requests, quantity

GPU = "nvidia.com/gpu"
def test_pod_requests_follow_the_kubernetes_rule() -> None:
    spec = {
        "containers": [{"resources": {"limits": {GPU: "1"}}},
                       {"resources": {"requests": {GPU: "1"}, "limits": {GPU: "1"}}}],
        "initContainers": [
            {"restartPolicy": "Always", "resources": {"limits": {GPU: "1"}}},  # a sidecar
            {"resources": {"limits": {GPU: "3"}}},  # runs beside the sidecar: 4
        ],
        "overhead": {GPU: "1"},
    }
    assert pod_requests(spec)[GPU] == 5  # max(2 + 1, 1 + 3) + 1
    del spec["overhead"]
    spec["initContainers"] = [{"resources": {"limits": {GPU: "1"}}}]
    assert extended_requests(spec) == {GPU: 2}  # the containers' sum beats the init one
    assert pod_requests({"containers": [{"resources": {"requests": {"cpu": "500m"}}}]}) == {
        "cpu": Fraction(1, 2)}


def test_quantities_parse_as_kubernetes_writes_them() -> None:
    assert quantity("2") == 2
    assert quantity("1k") == 1000
    assert quantity("1Ki") == 1024
    assert quantity("250m") == Fraction(1, 4)
    assert quantity("1e3") == 1000
    for bad in ("", "1x", "one", "1mi"):
        with pytest.raises(ValueError, match="quantity"):
            quantity(bad)
    with pytest.raises(ValueError, match="whole numbers"):
        extended_requests({"containers": [{"resources": {"limits": {GPU: "500m"}}}]})


_NAMES = st.sampled_from([GPU, "example.com/fpga"])


def _container(sidecar: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    amounts = st.dictionaries(_NAMES, st.integers(0, 4).map(str), max_size=2)
    return st.builds(
        lambda limits, use_requests: {
            **({"restartPolicy": "Always"} if sidecar else {}),
            "resources": {"requests" if use_requests else "limits": limits}},
        amounts, st.booleans())


_SPECS = st.fixed_dictionaries(
    {"containers": st.lists(_container(), min_size=1, max_size=3)},
    optional={
        "initContainers": st.lists(st.one_of(_container(), _container(sidecar=True)),
                                   max_size=4),
        "overhead": st.dictionaries(_NAMES, st.integers(0, 2).map(str), max_size=2),
    })


@settings(max_examples=300, deadline=None)
@given(_SPECS)
def test_the_operator_counts_pod_requests_as_the_harness_does(spec: dict[str, Any]) -> None:
    assert resources.pod_requests(spec) == extended_requests(spec)
