"""Issue 14's engine rules, end to end through the simulator (heartbeats every 5 s)."""

from __future__ import annotations

import math
import random

from queueworker.simulate.cli import simulate
from queueworker.simulate.trace import TraceJob

from support.engine_specs import spec


def _trickle(rate: float, median: float, end: float, seed: int = 3) -> list[TraceJob]:
    rng = random.Random(seed)
    t, out = 0.0, []
    while True:
        t += rng.expovariate(rate)
        if t > end:
            return out
        out.append(TraceJob(t, median * math.exp(rng.gauss(0, 0.3)), "default"))


def test_no_scale_to_zero_under_a_trickle() -> None:
    # 0.5 jobs/s of 0.3 s jobs for an hour: most polls see an empty queue. Were
    # the pool scaled to zero, the next job would wait for a pod start (20 s).
    jobs = _trickle(0.5, 0.3, 3600)
    r = simulate(spec({"maxReplicas": 20, "idleSecondsBeforeZero": 60}), jobs, "ours", 20)
    assert r.completed == len(jobs)
    # The old idle clock (polls only) gave p95 14 s on this trickle.
    assert r.wait_p95 < 5, r


def test_short_jobs_need_few_pods() -> None:
    # A trickle, then 2,000 e-mails of 0.2 s (400 s of work) at once.
    jobs = _trickle(0.5, 0.2, 1200) + [TraceJob(600.0 + i / 100, 0.2, "default")
                                        for i in range(2000)]
    jobs.sort(key=lambda j: j.arrival)
    s = spec({"maxReplicas": 100})
    r = simulate(s, jobs, "ours", 20)
    assert r.completed == len(jobs)
    # The job count alone asks for maxReplicas (100) pods.
    assert r.max_replicas <= 40, r
    assert r.wait_p95 <= s.scaling.target_wait_seconds + 20 + 5, r


def test_wait_time_with_a_large_backlog_target_still_scales() -> None:
    # targetBacklogPerReplica 200 is a job-count target, not 200 jobs per pod:
    # waitTime must still size the fleet from the work (pods run one job).
    jobs = _trickle(2.0, 4.0, 1800)
    r = simulate(spec({"maxReplicas": 50, "policy": "waitTime", "targetBacklogPerReplica": 200,
                       "targetWaitSeconds": 10}), jobs, "ours", 20)
    assert r.max_replicas >= 8, r  # about 8 jobs in service on average
    assert r.wait_p95 < 30, r


def _drained_busy(beat_seconds: float) -> tuple[float, int]:
    # Target 1, no scale-down window: idle pods are removed at every poll, and
    # with heartbeats some idle-looking ones have just taken a job.
    jobs = _trickle(1.0, 8.0, 1800)
    s = spec({"maxReplicas": 20, "scaleDown": {"stabilizationSeconds": 0}})
    r = simulate(s, jobs, "ours", 10, beat_seconds=beat_seconds)
    assert r.completed == len(jobs)
    assert r.interrupted == 0
    return r.terminating_seconds, r.scale_events


def test_exact_heartbeats_never_drain_a_pod_running_a_job() -> None:
    terminating, _ = _drained_busy(0.0)
    assert terminating == 0


def test_heartbeat_lag_costs_drains_but_never_a_job() -> None:
    # With 5 s beats a pod that took a job since its beat can be picked; it
    # drains (finishes its job), it is never cut. The engine's floor (jobs in
    # flight beyond the heartbeats) and freshest-beat-first victims keep this
    # rare; tests/engine/test_engine_work.py checks the rules themselves.
    terminating, _ = _drained_busy(5.0)
    assert 0 < terminating < 1200


def test_steady_load_does_not_churn() -> None:
    # 1.5 jobs/s of about 4 s for an hour: the count should settle, not follow
    # every Poisson wiggle. The engine before the restart-horizon rules made 91
    # scale events here, 31 of them scale-ups within 60 s of a scale-down.
    jobs = _trickle(1.5, 4.0, 3600, seed=5)
    r = simulate(spec({"maxReplicas": 50}), jobs, "ours", 20)
    assert r.completed == len(jobs)
    assert r.interrupted == 0
    assert r.churn_ups <= 5, r
    assert r.scale_events <= 50, r
    assert r.wait_p95 < 10, r


def test_prefetched_jobs_told_in_beats_keep_the_fleet_small() -> None:
    # Workers that prefetch one job each (a fixed --prefetch 1): the queue counts
    # the buffered jobs in flight. Told of them, the engine neither reads them as
    # heartbeat lag (holding idle pods) nor as longer jobs.
    jobs = _trickle(1.5, 4.0, 1800, seed=6)
    s = spec({"maxReplicas": 50})
    told = simulate(s, jobs, "ours", 20, prefetch=1)
    untold = simulate(s, jobs, "ours", 20, prefetch=1, beats_say_buffered=False)
    assert told.completed == untold.completed == len(jobs)
    assert told.interrupted == untold.interrupted == 0
    assert told.worker_seconds < 0.9 * untold.worker_seconds, (told, untold)
    assert told.never_ran_pods < untold.never_ran_pods, (told, untold)


def test_a_schedule_window_warms_pods_before_a_known_rush() -> None:
    # Monday 07:00 in Berlin; from 08:00, 0.5 jobs/s of 30 s for 20 minutes; pods
    # take 90 s to start. A window from 07:50 holds 15 replicas (the rush's load).
    from datetime import datetime
    from zoneinfo import ZoneInfo

    start = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    jobs = [TraceJob(3600 + j.arrival, j.run_seconds, "default")
            for j in _trickle(0.5, 30.0, 1200, seed=8)]
    window = {"start": "50 7 * * 1-5", "end": "30 8 * * 1-5", "timezone": "Europe/Berlin",
              "minReplicas": 15}
    cold = simulate(spec({"maxReplicas": 30}), jobs, "ours", 90, start_time=start)
    warm = simulate(spec({"maxReplicas": 30, "minReplicasSchedules": [window]}), jobs, "ours",
                    90, start_time=start)
    assert cold.completed == warm.completed == len(jobs)
    assert warm.wait_p95 < 0.5 * cold.wait_p95, (warm, cold)
    assert warm.worker_seconds > cold.worker_seconds  # the window's price: warm pods


def test_drain_ahead_never_cuts_a_heavy_tailed_job() -> None:
    # GPU jobs of about 3 minutes on average, but a few run 15-50 minutes: longer
    # than the 870 s drain deadline. Draining busy pods ahead on the mean alone
    # cut them; once such a job is seen running, the engine drains none ahead.
    rng = random.Random(3)
    t, jobs = 0.0, []
    while t < 4 * 3600:
        t += rng.expovariate(1 / 300)
        jobs += [TraceJob(t + rng.uniform(0, 30), min(3000.0, 60 * rng.paretovariate(1.5)),
                          "default") for _ in range(rng.randint(1, 6))]
    jobs.sort(key=lambda j: j.arrival)
    assert sum(1 for j in jobs if j.run_seconds > 870) >= 2
    s = spec({"maxReplicas": 16, "idleSecondsBeforeZero": 120},
             limits={"nvidia.com/gpu": 1})
    raw = s.model_dump(by_alias=True, exclude_none=True, mode="json")
    raw["drain"] = {"graceSeconds": 900, "deadlineMarginSeconds": 30}
    from queueworker.operator.validation import parse_spec

    r = simulate(parse_spec(raw), jobs, "ours", 120, gpus=16)
    assert r.completed == len(jobs)
    assert r.interrupted == 0, r
