"""A Redis that answers with errors: out of memory, read-only replica.

Nothing is lost, the worker keeps running and resumes when Redis recovers, the
CLI says what is wrong in one line, and the depth readers still work against a
replica (reads are allowed there).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from queueworker.observe.layouts.read import read_depths_sync
from queueworker.operator import api
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.redis_server import RedisServer
from support.worker_proc import entries, start_worker, stop, wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "queueworker.cli", *args],
                          capture_output=True, text=True, timeout=60)


def _fill(client: redis.Redis) -> int:
    """Write until Redis refuses with OOM; returns how many filler keys it took."""
    n = 0
    while n < 100_000:
        try:
            client.set(f"filler:{n}", "x" * 4096)
        except redis.exceptions.OutOfMemoryError:
            return n
        n += 1
    raise AssertionError("Redis never refused a write with OOM: is maxmemory set?")


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    server = RedisServer("--maxmemory", "3mb", "--maxmemory-policy", "noeviction").start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer().start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port)).start()
    wait_until(lambda: redis.Redis(port=replica.port).info("replication")
               .get("master_link_status") == "up", what="replica link")
    yield primary, replica
    replica.cleanup()
    primary.cleanup()


def test_enqueue_on_full_redis_is_one_clear_line_and_writes_nothing(
        small_redis: RedisServer) -> None:
    client = redis.Redis.from_url(small_redis.url)
    _fill(client)
    run = _cli("enqueue", "--redis-url", small_redis.url, "emails", '{"to": "a@b.c"}')
    assert run.returncode != 0
    assert "out of memory" in run.stderr
    assert "maxmemory" in run.stderr
    assert "Traceback" not in run.stderr
    assert client.llen(keys.waiting("emails")) == 0
    assert list(client.scan_iter(match="qw:*job:*")) == []


def test_worker_survives_oom_and_finishes_the_job_once_memory_is_freed(
        small_redis: RedisServer) -> None:
    client = redis.Redis.from_url(small_redis.url)
    job_id = Producer(client).enqueue("default", {"n": 1})
    n = _fill(client)
    worker = start_worker(small_redis.url)
    try:
        time.sleep(2.0)  # several fetch attempts against a full Redis
        assert worker.poll() is None, "the worker must keep running"
        assert client.llen(keys.waiting("default")) + client.zcard(keys.inflight("default")) == 1
        client.delete(*[f"filler:{i}" for i in range(n)])
        wait_until(lambda: any(e.startswith(job_id) for e in entries(small_redis.url,
                                                                      "test:done")),
                   what="the job to complete after memory was freed")
    finally:
        code, out = stop(worker)
    assert code == 0
    assert "OutOfMemoryError" in out  # logged as a structured warning, not a crash
    assert "Traceback" not in out


def test_enqueue_on_replica_names_the_problem(
        primary_and_replica: tuple[RedisServer, RedisServer]) -> None:
    _, replica = primary_and_replica
    run = _cli("enqueue", "--redis-url", replica.url, "emails", "{}")
    assert run.returncode != 0
    assert "read-only replica" in run.stderr
    assert "primary" in run.stderr
    assert "Traceback" not in run.stderr


def test_worker_on_replica_keeps_running_and_drains(
        primary_and_replica: tuple[RedisServer, RedisServer]) -> None:
    _, replica = primary_and_replica
    worker = start_worker(replica.url)
    time.sleep(1.5)
    assert worker.poll() is None
    code, out = stop(worker)
    assert code == 0
    assert "ReadOnlyError" in out
    assert "Traceback" not in out


def test_depth_readers_work_against_a_replica(
        primary_and_replica: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = primary_and_replica
    Producer(redis.Redis.from_url(primary.url)).enqueue("reports", {"n": 1})
    queues = [api.QueueSpec(name="reports"), api.QueueSpec(name="plain", layout="list")]
    rc = redis.Redis.from_url(replica.url)
    wait_until(lambda: rc.llen(keys.waiting("reports")) == 1, what="replication")
    depths = read_depths_sync(rc, queues, time.time())
    assert [getattr(d, "waiting", None) for d in depths] == [1, 0]
