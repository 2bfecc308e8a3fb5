"""The emulator's server-side apply (support/kube_emulator.py), as the operator uses it.

The rules the operator relies on, which a real API server follows too
(tests/cluster/e2e_operator.py checks them there): an apply creates a missing
object; a field the manager applied before and leaves out now is removed unless
another manager applied it; a merge patch takes the fields it writes away from
every applier.
"""

from __future__ import annotations

from typing import Any

from queueworker.operator.cluster import client as kube

from support.operator_cluster import Cluster

PATH = kube.deployments_path("default", "d")


def body(env: list[dict[str, str]], replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}},
                     "spec": {"containers": [{"name": "c", "image": "i", "env": env}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default",
                         "annotations": {"mine": "1"}}, "spec": spec}


async def apply(c: Cluster, doc: dict[str, Any], manager: str = "qw") -> dict[str, Any]:
    return await c.client.apply(PATH, doc, operation="t", field_manager=manager, force=True)


async def test_apply_creates_then_removes_what_it_leaves_out() -> None:
    async with Cluster() as c:
        created = await apply(c, body([{"name": "A", "value": "1"}], replicas=2))
        assert created["metadata"]["uid"]
        assert created["spec"]["replicas"] == 2
        # Someone else's annotation stays: it was never this manager's.
        await c.client.patch(PATH, {"metadata": {"annotations": {"theirs": "x"}}},
                             operation="t")
        doc = body([])
        del doc["metadata"]["annotations"]
        after = await apply(c, doc)
        assert after["spec"]["template"]["spec"]["containers"][0]["env"] == []
        assert "mine" not in after["metadata"].get("annotations", {})
        assert after["metadata"]["annotations"]["theirs"] == "x"
        # replicas were applied by this manager alone, and left out: gone.
        assert "replicas" not in after["spec"]
        assert int(after["metadata"]["generation"]) > int(created["metadata"]["generation"])


async def test_a_field_shared_with_another_manager_or_taken_by_an_update_stays() -> None:
    async with Cluster() as c:
        await apply(c, body([], replicas=2))
        await apply(c, {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "d"}, "spec": {"replicas": 2}}, "replicas")
        shared = await apply(c, body([]))
        assert shared["spec"]["replicas"] == 2
        # A merge patch owns what it wrote: a later apply leaving it out keeps it.
        await apply(c, body([], replicas=3))
        await c.client.patch(PATH, {"spec": {"replicas": 5}}, operation="t")
        after = await apply(c, body([]))
        assert after["spec"]["replicas"] == 5
