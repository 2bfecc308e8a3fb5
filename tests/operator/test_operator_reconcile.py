"""The real kopf operator against the emulator: the worker Deployment."""

from __future__ import annotations

import pytest

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


async def test_queueworker_creates_a_correct_deployment(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        created = await c.create_qw("mail", spec(redis_url, ["high", "low"], minReplicas=1))
        uid = created["metadata"]["uid"]
        d = await wait_for(lambda: c.deployment("mail"), 10, "the Deployment")
        meta, dspec = d["metadata"], d["spec"]
        assert meta["ownerReferences"] == [{
            "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker", "name": "mail",
            "uid": uid, "controller": True, "blockOwnerDeletion": True}]
        assert dspec["selector"] == {"matchLabels": {
            "app.kubernetes.io/name": "queueworker", "app.kubernetes.io/instance": "mail"}}
        labels = dspec["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "queueworker-operator"
        pod = dspec["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 60
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["QUEUEWORKER_REDIS_URL"]["value"] == redis_url
        assert env["QUEUEWORKER_QUEUES"]["value"] == "high,low"
        assert env["QUEUEWORKER_DRAIN_DEADLINE"]["value"] == "55"
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert dspec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert dspec["replicas"] == 1
        # Status: selector for the scale subresource, conditions from the first visit.
        st = await wait_for(lambda: c.qw("mail").get("status", {}).get("selector") and
                            c.qw("mail")["status"], 10, "status")
        assert st["selector"] == (
            "app.kubernetes.io/instance=mail,app.kubernetes.io/name=queueworker")
        types = {cond["type"]: cond["status"] for cond in st["conditions"]}
        assert types["SpecValid"] == "True"
        assert types["RedisReachable"] == "True"
        assert set(types) >= {"Ready", "SpecValid", "RedisReachable", "GPULimited", "Scaling"}
