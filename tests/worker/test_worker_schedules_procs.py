"""Schedules with 3 worker processes and SIGKILLs: exactly one job per tick.

Once over 10 simulated minutes (the scheduler's clock is a Redis key the test
moves on), once in real time with a half-second schedule."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
import redis

from queueworker.worker import keys
from queueworker.worker.heartbeat import read_heartbeats
from queueworker.worker.schedules import schedule_key, tick_job_id

from support.schedule_worker import CLOCK_KEY
from support.worker_proc import FAST, ROOT, start_worker, stop, wait_until, worker_env
from support.worker_schedules import REAL, SIM

pytestmark = pytest.mark.slow

T0 = 1_800_000_000_000  # ms, a whole hour: every schedule's first tick is after it


def _sim_worker(url: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "support.schedule_worker", "--queue", "work",
           "--handler", "support.worker_handlers:record", *FAST,
           "--schedules", "support.worker_schedules:SIM"]
    return subprocess.Popen(cmd, cwd=ROOT, env=worker_env(url), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _ticks(r: redis.Redis) -> list[str]:
    return [x.decode() for x in r.lrange(keys.waiting("ticks"), 0, -1)]


def _next_due(r: redis.Redis, name: str) -> int:
    return int(r.hget(schedule_key(name), "next_due") or 0)


def test_three_workers_ten_simulated_minutes_with_sigkills(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set(CLOCK_KEY, T0)
    procs = [_sim_worker(redis_url) for _ in range(3)]
    rng = random.Random(16)
    kills = 0
    try:
        wait_until(lambda: all(r.exists(schedule_key(s.name)) for s in SIM), timeout=30,
                   what="the schedules to be registered")
        now, end, next_kill = T0, T0 + 600_000, time.monotonic() + 0.5
        while now < end:
            now += 2000
            r.set(CLOCK_KEY, now)
            time.sleep(0.02)
            if time.monotonic() >= next_kill:
                i = rng.randrange(3)
                procs[i].kill()
                procs[i].communicate()
                procs[i] = _sim_worker(redis_url)
                kills += 1
                next_kill = time.monotonic() + rng.uniform(0.3, 1.0)
        wait_until(lambda: all(_next_due(r, s.name) > end for s in SIM), timeout=30,
                   what="the schedules to catch up with the simulated clock")
        # A worker restarted just now may still be starting (no SIGTERM handler yet):
        # stop only workers that beat, so a -15 means a drain that failed.
        wait_until(lambda: {p.pid for p in procs} <= {h.pid for h in read_heartbeats(r)},
                   timeout=30, what="every running worker's first heartbeat")
    finally:
        codes = [stop(p) for p in procs]
    assert [c for c, _ in codes] == [0, 0, 0], codes
    assert kills >= 5
    got = _ticks(r)
    assert len(got) == len(set(got)), "a tick was enqueued twice"
    for s in SIM:
        expected, t = [], T0
        while (t := s.next_after(t)) <= end:
            expected.append(tick_job_id(s.name, t, s.queue))
        mine = sorted(i for i in got if i.endswith(f"-s-{s.name}{keys.id_suffix(s.queue)}"))
        assert mine == expected, s.name
    assert len(got) == 85 + 10 + 5  # every 7 s, every minute, every 2 minutes (New York)
    assert int(r.hget(keys.stats("ticks"), "enqueued") or 0) == len(got)


def test_three_workers_in_real_time_with_a_sigkill(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    args = ("--schedules", "support.worker_schedules:REAL")
    procs = [start_worker(redis_url, *args, queues="work") for _ in range(3)]
    name = REAL[0].name
    try:
        wait_until(lambda: len(_ticks(r)) >= 3, timeout=30, what="three ticks")
        procs[0].kill()
        procs[0].communicate()
        seen = len(_ticks(r))
        wait_until(lambda: len(_ticks(r)) >= seen + 4, timeout=30, what="four more ticks")
    finally:
        for p in procs[1:]:
            code, out = stop(p)
            assert code == 0, out
    got = sorted(_ticks(r))
    due = [int(i[:13]) for i in got]
    assert len(set(got)) == len(got)
    # Consecutive ticks, none missing, none twice, whoever was alive.
    assert due == list(range(due[0], due[0] + 500 * len(due), 500))
    assert got == [tick_job_id(name, t, REAL[0].queue) for t in due]
