"""context.Shared runs one Celery heartbeat subscription per Redis client, for the
QueueWorkers that use it: started by the first, stopped with the last."""

from __future__ import annotations

import asyncio
import base64
import json

import redis.asyncio

from queueworker.operator.cluster.client import KubeClient
from queueworker.operator.controller.context import OperatorConfig, Shared


def _no_kube() -> KubeClient:
    raise AssertionError("no API call here")


def _beat(host: str, active: int) -> str:
    body = base64.b64encode(json.dumps({"type": "worker-heartbeat", "hostname": host,
                                        "active": active, "pid": 7}).encode()).decode()
    return json.dumps({"body": body, "properties": {"body_encoding": "base64"}})


async def _heard(shared: Shared, client: redis.asyncio.Redis, user: str, host: str) -> bool:
    for _ in range(50):
        await client.publish("/0.celeryev/worker.heartbeat", _beat(host, 1))
        await asyncio.sleep(0.1)
        if any(r.worker == host for r in shared.celery_beats(client, user).reports()):
            return True
    return False


async def test_one_subscription_per_redis_shared_and_stopped_with_its_last_user(
        redis_url: str) -> None:
    shared = Shared(OperatorConfig(), _no_kube)
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=1.0)
    try:
        a = shared.celery_beats(client, "ns/a")
        b = shared.celery_beats(client, "ns/b")
        assert a is b
        assert shared.celery_listeners() == 1
        assert await _heard(shared, client, "ns/a", "celery@pod-1")
        shared.celery_release("ns/a")
        assert shared.celery_listeners() == 1, "ns/b still listens"
        shared.celery_release("ns/b")
        await asyncio.sleep(0)
        assert shared.celery_listeners() == 0
        # A new user starts a fresh subscription that hears anew.
        assert await _heard(shared, client, "ns/c", "celery@pod-2")
    finally:
        await shared.close()
        await client.aclose()
    assert shared.celery_listeners() == 0
