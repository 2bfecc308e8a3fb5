"""Quantities and a pod's effective request: the one rule every caller uses."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from queueworker.engine.resources import (
    extended,
    find_gpu_resource,
    pod_request,
    pod_requests,
    quantity,
    same_quantity,
    units,
)

GPU = "nvidia.com/gpu"
NIC = "example.com/nic"


def limits(name: str, values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "resources": {"limits": values}, **extra}


def test_quantities() -> None:
    assert [units(x) for x in ("2", 3, "1k", "1Ki", "4.0", 2.0, "2e3")] == [
        2, 3, 1000, 1024, 4, 2, 2000]
    assert quantity("500m") == Fraction(1, 2)
    assert quantity("1Gi") == 2**30
    assert same_quantity("1000m", "1")
    assert same_quantity("1024Mi", "1Gi")
    assert not same_quantity("1", "2")
    assert not same_quantity("x", "x")
    for bad in ("lots", "", "1.2.3", "1Q", True, None, float("nan")):
        with pytest.raises(ValueError, match="not a resource quantity"):
            quantity(bad)


def test_extended_keeps_vendor_resources_and_skips_what_is_not_a_quantity() -> None:
    assert extended({"cpu": "2", GPU: "4", NIC: "lots", "example.com/x": "1k"}) == {
        GPU: 4, "example.com/x": 1000}
    assert extended(None) == {}


def test_app_containers_add_up_and_requests_default_to_limits() -> None:
    spec = {"containers": [limits("a", {GPU: "1"}),
                           {"name": "b", "resources": {"requests": {GPU: 2, NIC: "1"}}}]}
    assert pod_requests(spec) == {GPU: 3, NIC: 1}


def test_sidecar_adds_to_app_containers() -> None:
    spec = {"initContainers": [limits("s", {GPU: "1"}, restartPolicy="Always"),
                               limits("i", {GPU: "1"})],
            "containers": [{"name": "c", "resources": {"requests": {GPU: 2}}}]}
    assert pod_request(spec, GPU) == 3


def test_init_container_peak_counts_the_sidecars_started_before_it() -> None:
    # Sidecar (1) runs while init "big" (3) runs: peak 4, above app 1 + sidecar 1.
    spec = {"initContainers": [limits("s", {GPU: "1"}, restartPolicy="Always"),
                               limits("big", {GPU: "3"})],
            "containers": [limits("c", {GPU: "1"})]}
    assert pod_request(spec, GPU) == 4
    # An init container before the sidecar runs alone.
    spec["initContainers"].reverse()
    assert pod_request(spec, GPU) == 3


def test_overhead_is_added_and_unasked_resources_are_zero() -> None:
    spec = {"containers": [limits("c", {GPU: "1"})],
            "initContainers": [limits("i", {GPU: "3"})], "overhead": {GPU: "1", "cpu": "1"}}
    assert pod_request(spec, GPU) == 4
    assert pod_request(spec, NIC) == 0
    assert pod_requests({"containers": [limits("c", {"cpu": "1", GPU: "0"})]}) == {}


def test_find_gpu_resource() -> None:
    mig = "nvidia.com/mig-1g.5gb"
    assert find_gpu_resource({"containers": [limits("c", {"cpu": "1", mig: "1"})]}) == mig
    assert find_gpu_resource({"containers": [limits("c", {NIC: "1"})]}) is None
