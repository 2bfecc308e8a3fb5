"""Durable enqueue (WAIT): acknowledged once a replica has the job; an error naming
the jobs when no replica does in time (they are on the master)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import cli_enqueue, keys
from queueworker.worker.config import ENV_REDIS_URL
from queueworker.worker.durable import AsyncDurableProducer, DurableProducer, NotReplicatedError

from support.redis_server import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer().start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port)).start()
    yield master, replica
    replica.cleanup()
    master.cleanup()


def test_a_durable_enqueue_returns_once_the_replica_has_the_job(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    producer = DurableProducer(redis.Redis.from_url(master.url), min_replicas_ack=1,
                               ack_timeout=10.0)
    job_id = producer.enqueue("q", {"n": 1})
    ids = producer.enqueue_many("q", [{"n": i} for i in range(5)], chunk=2)
    seen = redis.Redis.from_url(replica.url)
    for jid in [job_id, *ids]:  # no waiting here: WAIT returned, so the replica has them
        assert seen.exists(keys.job(jid))


def test_too_few_replicas_is_an_error_naming_the_job(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, _ = pair
    producer = DurableProducer(redis.Redis.from_url(master.url), min_replicas_ack=2,
                               ack_timeout=0.05)
    with pytest.raises(NotReplicatedError, match="reached 1 replica") as info:
        producer.enqueue("q", {"n": 1})
    assert redis.Redis.from_url(master.url).exists(keys.job(info.value.ids[0]))


async def test_the_async_producer_waits_too(pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    client = aioredis.Redis.from_url(master.url)
    try:
        producer = AsyncDurableProducer(client, min_replicas_ack=1, ack_timeout=10.0)
        job_id = await producer.enqueue("q", {"n": 2})
        many = await producer.enqueue_many("q", [{"n": i} for i in range(5)], chunk=2)
        with pytest.raises(NotReplicatedError):
            await AsyncDurableProducer(client, min_replicas_ack=3,
                                       ack_timeout=0.05).enqueue("q", {"n": 3})
    finally:
        await client.aclose()
    seen = redis.Redis.from_url(replica.url)
    assert all(seen.exists(keys.job(j)) for j in [job_id, *many])


def test_the_cli_enqueues_durably_or_says_why_not(
        pair: tuple[RedisServer, RedisServer], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    master, replica = pair
    monkeypatch.setenv(ENV_REDIS_URL, master.url)
    assert cli_enqueue.main(["q", '{"n": 1}', "--min-replicas-ack", "1"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert redis.Redis.from_url(replica.url).exists(keys.job(job_id))
    assert cli_enqueue.main(["q", '{"n": 2}', "--min-replicas-ack", "2"]) == 4
    err = capsys.readouterr().err
    assert "reached 1 replica(s), 2 wanted" in err
    assert err.count("\n") == 1
