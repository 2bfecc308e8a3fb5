"""Local mode scales real worker processes up on backlog and back to zero."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import redis

from queueworker.local.embedded_redis import free_port
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, local_cmd, write_manifest
from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf'^{name}\{{namespace="local",queueworker="t"\}} (\S+)$', body, re.M)
    assert match, f"{name} not exported:\n{body[:2000]}"
    return float(match.group(1))


def test_scales_up_on_backlog_and_back_to_zero(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    manifest = write_manifest(tmp_path, redis_url, max_replicas=3, target=2, idle=2)
    port = free_port()
    local = LocalProc([*local_cmd(manifest), "--metrics-port", str(port)])
    try:
        local.wait_for("status ")  # first poll: nothing to do, no workers
        assert "scale up" not in local.output
        producer = Producer(client)
        producer.enqueue_many("work", ({"n": n, "seconds": 0.3} for n in range(12)))
        local.wait_for("scale up 0 -> ", timeout=20)
        wait_until(lambda: _metric(port, "queueworker_current_replicas") >= 2, 20, 0.1,
                   "2 replicas")
        assert _metric(port, "queueworker_desired_replicas") >= 2
        # Ready comes from the workers' heartbeats in Redis (POD_NAME = replica name).
        wait_until(lambda: _metric(port, "queueworker_ready_replicas") >= 1, 20, 0.1, "a heartbeat")
        wait_until(lambda: client.scard("t:done") == 12, 60, 0.1, "all 12 jobs done")
        local.wait_for("-> 0:", timeout=30)  # idle for idleSecondsBeforeZero: back to zero
        wait_until(lambda: _metric(port, "queueworker_current_replicas") == 0, 10, 0.1,
                   "0 replicas")
        assert "queueworker_scale_events_total" in urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # The workers' processes are gone: their heartbeats stop.
        wait_until(lambda: not client.keys("qw:worker:*"), 20, 0.1, "worker heartbeats to expire")
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0, local.output
    runs = {k.decode(): int(v) for k, v in client.hgetall("t:runs").items()}
    assert sorted(runs) == sorted(str(n) for n in range(12))
    assert set(runs.values()) == {1}, "no job ran twice"
    assert "replica.exited_unasked" not in local.output


def test_scale_down_stops_the_idle_replica_not_the_busy_one(
        tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    # A drain deadline of 1 s: stopping the busy replica would hand its 6 s job back.
    # No prefetch: each replica holds at most the one job it runs.
    manifest = write_manifest(tmp_path, redis_url, max_replicas=2, target=1, idle=30,
                              grace=3, margin=2, worker_args=("--prefetch", "0"))
    local = LocalProc(local_cmd(manifest))
    try:
        local.wait_for("status ")
        producer = Producer(client)
        long_id = producer.enqueue("work", {"n": 0, "seconds": 6.0})
        producer.enqueue("work", {"n": 1, "seconds": 0.2})
        local.wait_for(" -> 2: ", timeout=20)
        line = local.wait_for("scale down 2 -> 1", timeout=30)
        assert "in flight 1" in line, "scaled down while the long job ran"
        wait_until(lambda: client.sismember("t:done", "0"), 30, 0.1, "the long job done")
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0, local.output
    job = producer.job(long_id)
    assert job is not None
    assert int(job["deliveries"]) == 1, f"the busy replica was stopped: {job}"
    assert client.hgetall("t:runs") == {b"0": b"1", b"1": b"1"}
