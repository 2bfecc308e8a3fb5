"""observe/batch.py against a real redis-server: many callers, one pipeline, each caller
its own replies and errors; and the poll grid that makes the loops of one Redis meet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio

from queueworker.observe import batch, busy, depths, reading
from queueworker.observe.batch import Batcher, phase_of, slot
from queueworker.worker import keys

from support.engine_layouts import qspec
from support.redis_server import RedisServer, free_port


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    c = redis.asyncio.Redis.from_url(redis_url)
    yield c
    await c.aclose()


def round_trips(counter: redis.Redis) -> int:
    """Replies Redis has written so far: one per pipeline of a few commands."""
    return int(counter.info("stats")["total_writes_processed"])


async def test_callers_in_one_window_share_one_pipeline(
        client: redis.asyncio.Redis, redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    for i in range(50):
        sync.rpush(f"list{i}", *range(i + 1))
    batcher = Batcher(client, window=0.2)
    await client.ping()  # the connection exists before counting
    before = round_trips(sync)  # its connection is open from here on
    replies = await asyncio.gather(*[batcher.execute([("LLEN", f"list{i}"), ("GET", "none")])
                                     for i in range(50)])
    assert [r[0] for r in replies] == [i + 1 for i in range(50)]
    assert all(r[1] is None for r in replies)
    assert batcher.stats.pipelines == 1
    assert batcher.stats.requests == 50
    assert batcher.stats.commands == 100
    # The INFO call itself is one more write; 50 pipelines would be 50.
    assert round_trips(sync) - before <= 2


async def test_one_bad_key_spoils_only_its_own_reading(
        client: redis.asyncio.Redis, redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    sync.set(keys.waiting("broken"), "not a list")
    sync.rpush(keys.waiting("fine"), "a", "b", "c")
    batcher = Batcher(client, window=0.2)
    good, bad = await asyncio.gather(
        reading.aread_batched(batcher, [qspec("fine", "native")], time.time(), []),
        reading.aread_batched(batcher, [qspec("broken", "native")], time.time(), []),
        return_exceptions=True)
    assert batcher.stats.pipelines == 1
    assert isinstance(bad, depths.QueueReadError)
    assert "broken" in str(bad)
    assert not isinstance(good, BaseException)
    queues, found = good
    assert [(q.name, q.waiting, q.in_flight) for q in queues] == [("fine", 3, 0)]
    assert found.errors == ()


async def test_batched_read_equals_the_unbatched_one(
        client: redis.asyncio.Redis, redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    sync.rpush("rq:queue:jobs", "id1", "id2")
    sync.rpush(keys.waiting("orders"), "x")
    queues = [qspec("jobs", "rq"), qspec("orders", "native"), qspec("celery", "celery")]
    now = time.time()
    batched = await reading.aread_batched(Batcher(client, window=0.0), queues, now, [])
    alone = await busy.aread(client, queues, now, [])
    assert batched == alone
    assert [q.waiting for q in batched[0]] == [2, 1, 0]


async def test_a_caller_that_gives_up_leaves_the_others_their_replies(
        client: redis.asyncio.Redis) -> None:
    await client.set("k", "v")
    batcher = Batcher(client, window=0.3, max_wait=1.0)
    quitter = asyncio.create_task(batcher.execute([("GET", "k")]))
    stayer = asyncio.create_task(batcher.execute([("GET", "k"), ("STRLEN", "k")]))
    await asyncio.sleep(0.05)
    quitter.cancel()  # as asyncio.wait_for does at a loop's read limit
    assert await stayer == [b"v", 1]
    assert quitter.cancelled()
    assert batcher.stats.requests == 1  # the cancelled request was never sent


async def test_an_unreachable_redis_raises_to_every_caller() -> None:
    dead = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=1)
    batcher = Batcher(dead, window=0.05)
    results = await asyncio.gather(batcher.execute([("PING",)]), batcher.execute([("PING",)]),
                                   return_exceptions=True)
    assert all(isinstance(r, redis.ConnectionError) for r in results), results
    await dead.aclose()


async def test_callers_a_little_apart_still_share_while_requests_keep_coming(
        client: redis.asyncio.Redis) -> None:
    batcher = Batcher(client, window=2.0, max_wait=30.0)

    async def late(k: int) -> list[object]:
        await asyncio.sleep(0.05 * k)  # a loaded loop reaching its read later
        return await batcher.execute([("ECHO", str(k))])

    replies = await asyncio.gather(*[late(k) for k in range(5)])
    assert replies == [[str(k).encode()] for k in range(5)]
    assert batcher.stats.pipelines == 1


async def test_max_wait_sends_while_requests_keep_coming(client: redis.asyncio.Redis) -> None:
    batcher = Batcher(client, window=0.2, max_wait=0.3)

    async def late(k: int) -> list[object]:
        await asyncio.sleep(0.05 * k)  # never a 0.2 s gap: only max_wait sends
        return await batcher.execute([("ECHO", str(k))])

    replies = await asyncio.gather(*[late(k) for k in range(20)])
    assert replies == [[str(k).encode()] for k in range(20)]
    assert batcher.stats.pipelines >= 2
    assert batcher.stats.requests == 20


def test_a_window_longer_than_max_wait_is_refused(client: redis.asyncio.Redis) -> None:
    with pytest.raises(ValueError, match="max_wait"):
        Batcher(client, window=1.0, max_wait=0.5)


async def test_a_full_batch_leaves_before_its_window(client: redis.asyncio.Redis) -> None:
    batcher = Batcher(client, window=30.0, max_wait=60.0, max_commands=4)
    replies = await asyncio.wait_for(
        asyncio.gather(*[batcher.execute([("PING",), ("PING",)]) for _ in range(2)]),
        timeout=10)
    assert replies == [[True, True], [True, True]]
    assert batcher.stats.pipelines == 1


async def test_after_a_restart_the_next_batch_reads_again() -> None:
    server = RedisServer().start()
    c = redis.asyncio.Redis.from_url(server.url, socket_timeout=2)
    try:
        batcher = Batcher(c, window=0.01)
        await c.set("k", "1")
        server.stop()
        with pytest.raises((redis.ConnectionError, OSError)):
            await batcher.execute([("GET", "k")])
        server.start()
        assert await batcher.execute([("DBSIZE",)]) == [0]  # a fresh server, no data
    finally:
        await c.aclose()
        server.cleanup()


def test_the_grid_puts_one_redis_loops_together_and_spreads_redis_servers() -> None:
    phase = phase_of("10.0.0.1:6379")
    assert phase == phase_of("10.0.0.1:6379")
    assert 0 <= phase < 1
    starts = [1000.0 + k * 0.37 for k in range(20)]  # loops started at any moment
    slots = {round(slot(t, 5.0, phase), 6) for t in starts}
    assert len(slots) <= 3  # the 7.4 s of starts reach at most 3 ticks of the grid
    for t in starts:
        s = slot(t, 5.0, phase)
        assert t + 2.5 <= s < t + 7.5 + 1e-9
        assert abs((s - phase * 5.0) / 5.0 - round((s - phase * 5.0) / 5.0)) < 1e-9
    on_grid = slot(1000.0, 5.0, phase)
    assert slot(on_grid + 0.004, 5.0, phase) == pytest.approx(on_grid + 5.0)
    assert slot(on_grid - 0.004, 5.0, phase) == pytest.approx(on_grid + 5.0)
    phases = {round(phase_of(f"10.0.0.{i}:6379"), 2) for i in range(20)}
    assert len(phases) >= 15  # different servers poll at different moments


async def test_replies_are_what_redis_pys_own_pipeline_gives(
        client: redis.asyncio.Redis, redis_url: str) -> None:
    # The batcher packs and reads its pipeline itself (one deadline, not a timer per
    # reply): the bytes on the wire, the callbacks and the errors must be redis-py's.
    sync = redis.Redis.from_url(redis_url)
    sync.hset("h", mapping={"a": "1", "é": "2"})
    sync.zadd("z", {"m": 1.5})
    sync.set("s", "x")
    commands = [("HGETALL", "h"), ("ZRANGE", "z", 0, 0, "WITHSCORES"), ("LLEN", "s"),
                ("ZCOUNT", "z", "-inf", repr(time.time())), ("CLIENT SETNAME", "qw"),
                ("HMGET", "h", "a", "é", "missing"), ("GET", b"s"), ("SISMEMBER", "k", 7)]
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    expected = await pipe.execute(raise_on_error=False)
    got = await Batcher(client, window=0.0).execute(commands)
    assert [repr(r) if isinstance(r, Exception) else r for r in got] == [
        repr(r) if isinstance(r, Exception) else r for r in expected]
    assert isinstance(got[2], redis.ResponseError)  # WRONGTYPE: that caller's alone
    assert got[0] == {b"a": b"1", "é".encode(): b"2"}  # HGETALL's callback ran
    conn = client.connection_pool.make_connection()
    assert batch._pack(commands, conn.encoder) == b"".join(conn.pack_commands(commands))


async def test_a_pipeline_that_takes_too_long_fails_its_callers_and_its_connection() -> None:
    server = RedisServer().start()
    try:
        client = redis.asyncio.Redis.from_url(server.url)
        batcher = Batcher(client, window=0.0, timeout=0.3)
        with pytest.raises(TimeoutError):
            await batcher.execute([("BLPOP", "nothing", 1)])  # blocks 1 s
        # The connection with the unread reply was dropped: the next pipeline is clean.
        await asyncio.sleep(1)
        assert await batcher.execute([("ECHO", "after")]) == [b"after"]
        await client.aclose()
    finally:
        server.cleanup()
