"""`queueworker worker` processes: SIGKILL, SIGTERM, drain deadline, chaos, bad config."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import redis

from queueworker.worker import keys
from queueworker.worker.heartbeat import read_heartbeats
from queueworker.worker.producer import Producer

from support.redis_server import RedisServer, free_port
from support.worker_proc import ROOT, entries, start_worker, stop, wait_until, worker_env

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _producer(url: str) -> Producer:
    return Producer(redis.Redis.from_url(url, decode_responses=True))


def _started(url: str, job_id: str, delivery: int = 1) -> bool:
    return f"{job_id}:{delivery}" in entries(url, "test:started")


def test_sigkill_mid_job_loses_nothing(redis_url: str) -> None:
    p = _producer(redis_url)
    job_id = p.enqueue("default", {"sleep": 2})
    victim = start_worker(redis_url)
    try:
        wait_until(lambda: _started(redis_url, job_id), what="the job to start")
        victim.kill()
        victim.wait(10)
        assert p.job(job_id)["state"] == "running"  # type: ignore[index]
    finally:
        victim.kill()
        victim.communicate()
    rescuer = start_worker(redis_url)
    try:
        wait_until(lambda: f"{job_id}:2" in entries(redis_url, "test:done"), timeout=30,
                   what="the job to complete on its second delivery")
        wait_until(lambda: p.job(job_id)["state"] == "done")  # type: ignore[index]
    finally:
        code, out = stop(rescuer)
    assert code == 0, out
    info = p.job(job_id)
    assert info is not None
    assert (info["deliveries"], info["lost"], info["tries"]) == (2, 1, 0)
    assert entries(redis_url, "test:done") == [f"{job_id}:2"]


def test_sigterm_finishes_in_flight_jobs_and_exits_0(redis_url: str) -> None:
    p = _producer(redis_url)
    job_id = p.enqueue("default", {"sleep": 1})
    later = p.enqueue_many("default", [{}] * 3)
    proc = start_worker(redis_url, "--concurrency", "1")
    wait_until(lambda: _started(redis_url, job_id))
    code, out = stop(proc, signal.SIGTERM)
    assert code == 0, out
    assert entries(redis_url, "test:done") == [f"{job_id}:1"]
    assert p.job(job_id)["state"] == "done"  # type: ignore[index]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.zcard(keys.inflight("default")) == 0
    assert sorted(r.lrange(keys.waiting("default"), 0, -1)) == sorted(later)
    assert "event=worker.drain reason=\"signal SIGTERM\"" in out


def test_drain_deadline_hands_jobs_back_and_the_next_worker_runs_them(redis_url: str) -> None:
    p = _producer(redis_url)
    job_id = p.enqueue("default", {"sleep": 3}, max_tries=1)
    proc = start_worker(redis_url, QUEUEWORKER_DRAIN_DEADLINE="0.5")
    wait_until(lambda: _started(redis_url, job_id))
    t0 = time.monotonic()
    code, out = stop(proc, signal.SIGTERM)
    assert code == 0, out
    assert time.monotonic() - t0 < 2.5
    info = p.job(job_id)
    assert info is not None
    assert (info["state"], info["tries"], info["handed_back"]) == ("waiting", 0, 1), info
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.lrange(keys.waiting("default"), -1, -1) == [job_id]  # the head: it runs next
    assert entries(redis_url, "test:done") == []
    nxt = start_worker(redis_url)
    try:
        wait_until(lambda: f"{job_id}:2" in entries(redis_url, "test:done"), timeout=15)
    finally:
        stop(nxt)
    assert p.job(job_id)["tries"] == 0  # type: ignore[index]


def test_a_second_signal_hands_back_at_once(redis_url: str) -> None:
    p = _producer(redis_url)
    job_id = p.enqueue("default", {"sleep": 20})
    proc = start_worker(redis_url, "--drain-deadline", "60")
    wait_until(lambda: _started(redis_url, job_id))
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None  # draining: waits for the job
    t0 = time.monotonic()
    code, out = stop(proc, signal.SIGINT)
    assert code == 0, out
    assert time.monotonic() - t0 < 3
    assert p.job(job_id)["state"] == "waiting"  # type: ignore[index]


CHAOS_JOBS = 10_000


@pytest.mark.slow
def test_four_workers_with_random_sigkills_lose_no_job(redis_url: str) -> None:
    p = _producer(redis_url)
    ids = p.enqueue_many("default", [{"i": i} for i in range(CHAOS_JOBS)])
    rng = random.Random(7)
    args = ("--concurrency", "8")
    procs = [start_worker(redis_url, *args) for _ in range(4)]
    kills = 0
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    def remaining() -> int:
        with r.pipeline(transaction=False) as pipe:
            pipe.llen(keys.waiting("default"))
            pipe.zcard(keys.inflight("default"))
            pipe.zcard(keys.delayed("default"))
            return sum(pipe.execute())

    t0 = time.monotonic()
    try:
        while remaining() and time.monotonic() - t0 < 90:
            time.sleep(rng.uniform(0.05, 0.4))
            if kills < 12:
                i = rng.randrange(4)
                procs[i].kill()
                procs[i].communicate()
                kills += 1
                procs[i] = start_worker(redis_url, *args)
        wait_until(lambda: remaining() == 0, timeout=30, what="every job to finish")
    finally:
        for proc in procs:
            stop(proc)
    elapsed = time.monotonic() - t0
    done = {e.rsplit(":", 1)[0] for e in entries(redis_url, "test:done")}
    assert done == set(ids), f"lost {len(set(ids) - done)} jobs"
    assert r.zcard(keys.failed("default")) == 0
    assert kills == 12
    redelivered = sum(1 for e in entries(redis_url, "test:done") if not e.endswith(":1"))
    print(f"{CHAOS_JOBS} jobs, 4 workers, {kills} SIGKILLs: {elapsed:.1f}s, "
          f"{redelivered} completions on a redelivery")


def _run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "queueworker.cli", *args], cwd=ROOT,
                          env=worker_env(url), capture_output=True, text=True, timeout=30)


def test_operator_env_sets_queues_drain_and_metrics_port(redis_url: str) -> None:
    port = free_port()
    p = _producer(redis_url)
    high = p.enqueue("high", {})
    proc = start_worker(redis_url, queues=None,
                        QUEUEWORKER_QUEUES="low,high", QUEUEWORKER_METRICS_PORT=str(port),
                        POD_NAME="emails-5d9c", QUEUEWORKER_DRAIN_DEADLINE="7")
    try:
        wait_until(lambda: f"{high}:1" in entries(redis_url, "test:done"))

        def healthz() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200 and r.read() == b"ok (idle)\n"
            except OSError:
                return False

        wait_until(healthz, what="/healthz 200")
        [beat] = read_heartbeats(redis.Redis.from_url(redis_url))
        assert beat.pod == "emails-5d9c"
        assert beat.queues == ("low", "high")
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert "deadline_s=7.0" in out


def test_unreachable_redis_is_one_clear_line() -> None:
    res = _run_cli("worker", "--handler", "support.worker_handlers:noop",
                   url="redis://127.0.0.1:1/0")
    assert res.returncode == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("queueworker: cannot connect to Redis at redis://127.0.0.1:1/0:")


def test_wrong_password_is_one_clear_line_without_the_password() -> None:
    server = RedisServer("--requirepass", "right-secret").start()
    try:
        url = f"redis://:wrong-secret@127.0.0.1:{server.port}/0"
        for args in (("worker", "--handler", "support.worker_handlers:noop"),
                     ("enqueue", "q", "{}"), ("failed", "list")):
            res = _run_cli(*args, url=url)
            assert res.returncode == 3, res
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1, res.stderr
            assert "authentication failed" in lines[0]
            assert "wrong-secret" not in res.stderr + res.stdout
            assert ":***@" in lines[0]
    finally:
        server.cleanup()


def test_a_handler_that_cannot_be_imported_stops_the_worker_at_start(redis_url: str) -> None:
    res = _run_cli("worker", "--handler", "no_such_pkg.jobs:run", url=redis_url)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "queueworker: cannot import handler module 'no_such_pkg.jobs': "
        "No module named 'no_such_pkg'")


def test_a_redis_outage_mid_job_loses_nothing() -> None:
    server = RedisServer("--appendfsync", "always", appendonly=True).start()
    try:
        url = server.url
        p = _producer(url)
        job_id = p.enqueue("default", {"sleep": 1.5})
        proc = start_worker(url, "--lease", "10", fast=False)
        try:
            wait_until(lambda: _started(url, job_id))
            server.stop()  # Redis goes away while the job runs ...
            time.sleep(1.0)
            assert proc.poll() is None  # ... the worker waits for it, it does not die
            server.start()
            wait_until(lambda: _producer(url).job(job_id)["state"] == "done",  # type: ignore[index]
                       timeout=30, what="the job to be acked after Redis came back")
        finally:
            code, out = stop(proc)
        assert code == 0, out
        assert "event=redis.error" in out
        info = p.job(job_id)
        assert info is not None
        assert info["deliveries"] == 1
        assert entries(url, "test:done") == [f"{job_id}:1"]
    finally:
        server.cleanup()
