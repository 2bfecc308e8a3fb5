"""Job ids name their queue, so a job's hash lives in its queue's hash slot (keys.job);
ids of the old form (no queue) keep their old key, so an upgrade loses no queued job."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from queueworker.worker import keys
from queueworker.worker.flows import batch_key, chain_key
from queueworker.worker.flows_lua import HOOKS
from queueworker.worker.job import new_id
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker
from queueworker.worker.scripts import PRELUDE

from support.worker_inproc import fast_settings, run_until, table

NAMES = ["emails", "a b/c", "Ünïcode", "x@y", "~7e", "colon:name", "dot.ted-name_1"]


@pytest.mark.parametrize("queue", NAMES)
def test_an_id_names_its_queue_and_its_hash_is_in_the_queues_slot(queue: str) -> None:
    job_id = new_id(1732400000.123, queue)
    assert job_id.startswith("1732400000123-")
    assert keys.enqueued_at_from_id(job_id) == pytest.approx(1732400000.123)
    assert all("!" <= c <= "~" and c not in "%/?#{}" for c in job_id), job_id  # URL path safe
    assert keys.queue_of_id(job_id) == queue
    assert key_slot(keys.job(job_id).encode()) == key_slot(keys.waiting(queue).encode())
    assert keys.done(job_id).startswith(keys.job(job_id))


def test_an_old_id_keeps_its_old_key_and_a_long_queue_name_is_refused() -> None:
    assert keys.queue_of_id("1732400000000-0123456789abcdef") is None
    assert keys.job("1732400000000-0123456789abcdef", "p") == "p:job:1732400000000-0123456789abcdef"
    with pytest.raises(ValueError, match="too long"):
        new_id(queue="q" * 190)


def test_the_scripts_build_the_same_job_key_as_keys_py(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    script = r.register_script(PRELUDE + "return {jkey(ARGV[2]), id_suffix(ARGV[3])}")
    for queue in NAMES:
        job_id = new_id(queue=queue)
        assert script(args=["qw", job_id, queue]) == [keys.job(job_id), keys.id_suffix(queue)]
    assert script(args=["qw", "123-abc", "q"])[0] == keys.legacy_job("123-abc")


def _legacy_job(r: redis.Redis, queue: str, job_id: str, payload: str) -> None:
    """What a worker of the old layout left in Redis: a hash under qw:job:ID, its id queued."""
    r.hset(keys.legacy_job(job_id), mapping={
        "queue": queue, "payload": payload, "enqueued_at": "1732400000", "deliveries": "0",
        "tries": "0", "max_tries": "1", "state": "waiting"})
    r.lpush(keys.waiting(queue), job_id)


async def test_jobs_queued_before_the_upgrade_still_run_and_fail(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    _legacy_job(r, "upg", "1732400000000-00000000000000a1", '{"n": 1}')
    _legacy_job(r, "upg", "1732400000000-00000000000000a2", '{"fail": true}')
    new = Producer(r).enqueue("upg", {"n": 3})
    seen: list[Any] = []

    async def handler(payload: dict[str, Any]) -> None:
        if payload.get("fail"):
            raise RuntimeError("planned")
        seen.append(payload["n"])
        await asyncio.sleep(0)

    def states() -> list[str | None]:
        return [r.hget(keys.job(i), "state") for i in
                ("1732400000000-00000000000000a1", "1732400000000-00000000000000a2", new)]

    async def settled() -> bool:
        return states() == ["done", "failed", "done"]

    await run_until(Worker(fast_settings(redis_url, queues=["upg"]), table(handler)), settled)
    assert sorted(seen) == [1, 3]
    assert r.exists(keys.legacy_job("1732400000000-00000000000000a1"))  # done, result kept
    assert not r.exists(keys.legacy_job(new))


def test_flow_ids_place_their_hash_as_job_ids_do(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    script = r.register_script(PRELUDE + HOOKS + "return {fkey('chain', ARGV[2]), "
                               "fkey('batch', ARGV[2])}")
    for fid in ("0123456789abcdef", "0123456789abcdef" + keys.id_suffix("a b")):
        assert script(args=["qw", fid]) == [chain_key(fid), batch_key(fid)]
    assert chain_key("0123456789abcdef") == "qw:chain:0123456789abcdef"  # the old key
    assert key_slot(batch_key("0123456789abcdef@mail").encode()) == keys.slot("mail")
