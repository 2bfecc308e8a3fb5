"""Redis outages, bad specs and missing Secrets: reported, contained, recovered."""

from __future__ import annotations

from typing import Any

import kmock
import pytest

from queueworker.operator import metrics

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec
from support.redis_server import RedisServer

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


async def test_redis_outage_falls_back_then_recovers() -> None:
    server = RedisServer(appendonly=False).start()
    try:
        url = server.url.replace("redis://", "redis://:hunter2secret@")
        server.stop()
        server.start()
        async with Cluster(config=fast_config()) as c:
            await c.start_operator()
            push_jobs(server.url, "jobs", 40)
            await c.create_qw("q", spec(url.replace(":hunter2secret@", ""), poll=POLL,
                                        maxReplicas=8, fallbackReplicas=2,
                                        targetBacklogPerReplica=10))
            await wait_for(lambda: c.replicas("q") == 4, 10, "4 replicas from the backlog")

            server.stop()
            await wait_for(lambda: c.replicas("q") == 2, 10, "fallback replicas")
            cond = await wait_for(
                lambda: (c.condition("q", "RedisReachable") or {}).get("status") == "False"
                and c.condition("q", "RedisReachable"), 5, "RedisReachable=False")
            assert cond["reason"] == "ConnectionFailed"
            assert cond["message"]
            assert c.condition("q", "Ready")["status"] == "False"  # type: ignore[index]
            assert "Fallback" in c.qw("q")["status"]["lastScaleReason"]

            server.start()
            push_jobs(server.url, "jobs", 60)
            await wait_for(lambda: c.replicas("q") == 6, 10, "back to the backlog's 6")
            await wait_for(
                lambda: (c.condition("q", "RedisReachable") or {}).get("status") == "True",
                5, "RedisReachable=True")
    finally:
        server.cleanup()


async def test_password_never_shows_in_status_or_events() -> None:
    server = RedisServer("--requirepass", "s3cretpassw0rd").start()
    try:
        async with Cluster(config=fast_config()) as c:
            await c.start_operator()
            await c.add_secret("redis-pw", {"password": "wrong-s3cretpassw0rd"})
            qw = spec(f"redis://127.0.0.1:{server.port}/0", poll=POLL, fallbackReplicas=1)
            qw["redis"]["passwordSecretRef"] = {"name": "redis-pw", "key": "password"}
            await c.create_qw("auth", qw)
            cond = await wait_for(
                lambda: (c.condition("auth", "RedisReachable") or {}).get("status") == "False"
                and c.condition("auth", "RedisReachable"), 10, "RedisReachable=False")
            everything = str(c.qw("auth")) + str(c.events())
            assert "wrong-s3cretpassw0rd" not in everything
            assert cond["message"]
    finally:
        server.cleanup()


async def test_bad_spec_is_reported_and_others_keep_scaling(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        bad = spec(redis_url, poll=POLL)
        bad["scaling"]["minReplicas"] = 5
        bad["scaling"]["maxReplicas"] = 2  # the CRD's CEL rule would refuse this; we must too
        await c.create_qw("bad", bad)
        missing = spec(redis_url, poll=POLL)
        missing["redis"] = {"urlSecretRef": {"name": "nope", "key": "url"}}
        await c.create_qw("nosecret", missing)
        await c.create_qw("good", spec(redis_url, ["good"], poll=POLL, targetBacklogPerReplica=10))

        cond = await wait_for(
            lambda: (c.condition("bad", "SpecValid") or {}).get("status") == "False"
            and c.condition("bad", "SpecValid"), 10, "SpecValid=False on the bad spec")
        assert cond["reason"] == "InvalidSpec"
        assert "minReplicas" in cond["message"]
        await wait_for(lambda: c.events("bad", "InvalidSpec"), 5, "a InvalidSpec Event")
        assert c.deployment("bad") is None

        cond = await wait_for(
            lambda: (c.condition("nosecret", "SpecValid") or {}).get("status") == "False"
            and c.condition("nosecret", "SpecValid"), 10, "SpecValid=False on a missing Secret")
        assert cond["reason"] == "SecretNotFound"
        assert "nope" in cond["message"]
        await wait_for(lambda: c.events("nosecret", "SecretNotFound"), 5, "an Event")

        push_jobs(redis_url, "good", 30)
        await wait_for(lambda: c.replicas("good") == 3, 10, "the good one scales")

        # Fixing the bad spec makes it valid and reconciled.
        await c.patch_qw("bad", {"spec": {"scaling": {"minReplicas": 1}}})
        await wait_for(lambda: (c.condition("bad", "SpecValid") or {}).get("status") == "True",
                       10, "SpecValid=True after the fix")
        await wait_for(lambda: c.replicas("bad") == 1, 10, "its Deployment")


async def test_url_and_password_from_secrets() -> None:
    server = RedisServer("--requirepass", "pa55-w0rd-xyz").start()
    try:
        async with Cluster(config=fast_config()) as c:
            await c.start_operator()
            await c.add_secret("redis", {"url": f"redis://127.0.0.1:{server.port}/0",
                                         "password": "pa55-w0rd-xyz"})
            qw = spec("redis://unused:6379/0", poll=POLL, targetBacklogPerReplica=10)
            qw["redis"] = {"urlSecretRef": {"name": "redis", "key": "url"},
                           "passwordSecretRef": {"name": "redis", "key": "password"}}
            await c.create_qw("sec", qw)
            push_jobs(f"redis://:pa55-w0rd-xyz@127.0.0.1:{server.port}/0", "jobs", 20)
            await wait_for(lambda: c.replicas("sec") == 2, 10, "2 replicas")
            assert c.condition("sec", "RedisReachable")["status"] == "True"  # type: ignore[index]
            env = {e["name"]: e for e in c.deployment("sec")["spec"]["template"]  # type: ignore[index]
                   ["spec"]["containers"][0]["env"]}
            assert env["QUEUEWORKER_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "redis", "key": "password"}
            assert "pa55-w0rd-xyz" not in str(c.deployment("sec")) + str(c.qw("sec"))
    finally:
        server.cleanup()


async def test_api_errors_are_retried(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        failures = {"left": 6}
        original = c.k._handle

        async def flaky(request: Any) -> Any:
            # The API server answers 503 to the operator's scale patches for a while
            # (the create and template writes are server-side applies: not these).
            path = request.url.path
            apply = "apply-patch" in str((request.headers or {}).get("Content-Type", ""))
            if (str(request.method).upper().endswith("PATCH") and "/deployments/" in path
                    and not path.endswith("/status") and not apply and failures["left"] > 0):
                failures["left"] -= 1
                raise kmock.KubernetesError(status=503, reason="ServiceUnavailable",
                                            message="try again")
            return await original(request)

        c.k._handle = flaky  # type: ignore[method-assign]
        before = metrics.REGISTRY.get_sample_value(
            "queueworker_api_errors_total", {"operation": "scale_deployment"}) or 0
        await c.start_operator()
        await c.create_qw("flaky", spec(redis_url, ["flaky"], poll=POLL,
                                        targetBacklogPerReplica=10))
        await wait_for(lambda: c.deployment("flaky"), 10, "the Deployment")
        push_jobs(redis_url, "flaky", 30)
        await wait_for(lambda: c.replicas("flaky") == 3, 20, "3 replicas despite the 503s")
        assert failures["left"] == 0
        after = metrics.REGISTRY.get_sample_value(
            "queueworker_api_errors_total", {"operation": "scale_deployment"}) or 0
        assert after > before  # a call that ran out of retries is counted, then retried
