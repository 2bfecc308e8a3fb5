"""The honest KEDA+HPA baseline: grace periods, the ReplicaSet's victim order,
waits of re-run jobs, and the cost of pods that never ran a job or are terminating."""

from __future__ import annotations

import pytest

from queueworker.simulate.cli import simulate
from queueworker.simulate.model import READY, Model, Pod
from queueworker.simulate.policies import KedaHpa, replicaset_rank
from queueworker.simulate.trace import TraceJob

from support.engine_specs import spec


def _model(jobs: list[TraceJob], start: float = 0.0, beat: float = 0.0) -> Model:
    return Model(jobs, ["default"], start, None, drain_seconds=110, beat_seconds=beat)


def test_a_cut_job_shows_its_whole_wait() -> None:
    m = _model([TraceJob(0.0, 100.0, "default")])
    m.add_pods(1, 0.0)
    first = next(iter(m.pods.values()))
    m.at(10.0, lambda now: m.remove_pod(first, now, 0.0))  # cut 10 s into the run
    m.at(50.0, lambda now: m.add_pods(1, now))  # the re-run starts at 50
    stats = m.run(tail_seconds=0)
    assert stats.interrupted == 1
    assert stats.completed == 1
    # From enqueue to the start of the run that succeeded, not to the first start.
    assert stats.waits == [50.0]


@pytest.mark.parametrize(("grace", "cut"), [(0.0, 1), (5.0, 1), (30.0, 0)])
def test_grace_lets_a_busy_victim_finish(grace: float, cut: int) -> None:
    m = _model([TraceJob(0.0, 20.0, "default")])
    m.add_pods(1, 0.0)
    pod = next(iter(m.pods.values()))
    m.at(1.0, lambda now: m.remove_pod(pod, now, grace))
    stats = m.run(tail_seconds=0, overrun_seconds=100)
    assert stats.interrupted == cut
    if not cut:
        # It finished inside its grace; the terminating time is paid for.
        assert stats.completed == 1
        assert stats.terminating_seconds == pytest.approx(19.0)
        assert stats.worker_seconds == pytest.approx(20.0)


def test_pods_that_never_ran_a_job_are_paid_for_and_reported() -> None:
    m = _model([TraceJob(0.0, 10.0, "default")], start=5.0)
    m.add_pods(3, 0.0)  # one job, three pods
    stats = m.run(tail_seconds=30)
    assert stats.never_ran_pods == 2
    assert stats.never_ran_seconds == pytest.approx(2 * 40.0)  # trace end 10 + tail 30
    assert stats.worker_seconds == pytest.approx(3 * 40.0)


def test_unfinished_jobs_count_their_wait_to_the_end() -> None:
    m = _model([TraceJob(0.0, 10.0, "default")])  # no pod ever comes
    stats = m.run(tail_seconds=20, overrun_seconds=0)
    assert stats.unfinished == 1
    assert stats.waits == [30.0]


def _pod(i: int, state: str, scheduled: float | None, created: float,
         ready: float | None = None) -> Pod:
    return Pod(i, f"p{i}", ("default",), state=state, scheduled_at=scheduled,
               created_at=created, ready_at=ready)


def test_replicaset_victim_order() -> None:
    now = 1000.0
    unassigned = _pod(1, "pending", None, 990.0)
    starting = _pod(2, "starting", 995.0, 995.0)
    young = _pod(3, READY, 0.0, 0.0, ready=998.0)  # ready 2 s
    old = _pod(4, READY, 0.0, 0.0, ready=10.0)  # ready 990 s
    ranked = sorted([old, young, starting, unassigned],
                    key=lambda p: replicaset_rank(p, now, 0.5))
    assert [p.name for p in ranked] == ["p1", "p2", "p3", "p4"]
    # Ready for times in the same log2 bucket: the UID decides, not the work in hand.
    a = _pod(5, READY, 0.0, 0.0, ready=500.0)
    b = _pod(6, READY, 0.0, 0.0, ready=501.0)
    assert replicaset_rank(a, now, 0.1) < replicaset_rank(b, now, 0.9)
    assert replicaset_rank(a, now, 0.9) > replicaset_rank(b, now, 0.1)


def test_keda_grace_decides_interruptions() -> None:
    # Waves of 60 s jobs: KEDA (LLEN only) scales busy pods away once the list is
    # empty. With Kubernetes' default 30 s grace the jobs are cut; with the grace
    # ours gets (110 s by default) they finish.
    jobs = [TraceJob(w * 900.0 + i, 60.0, "default") for w in range(3) for i in range(8)]
    s = spec({"maxReplicas": 10})
    default = simulate(s, jobs, "keda-hpa", 15)
    same = simulate(s, jobs, "keda-hpa-same-grace", 15)
    assert same.interrupted == 0
    assert same.completed == len(jobs)
    assert default.interrupted >= same.interrupted


def test_keda_grace_is_a_parameter() -> None:
    m = _model([TraceJob(0.0, 10.0, "default")])
    k = KedaHpa(spec({"maxReplicas": 3}), m, grace_seconds=12.5)
    assert k.grace == 12.5
    assert KedaHpa.DEFAULT_GRACE == 30.0


def test_heartbeat_lag_hides_a_fresh_job() -> None:
    m = _model([TraceJob(7.0, 100.0, "default")], beat=5.0)
    m.add_pods(1, 0.0)
    seen: dict[float, int] = {}
    pod = next(iter(m.pods.values()))
    for t in (6.0, 8.0, 9.9, 10.0, 12.0):
        m.at(t, lambda now: seen.__setitem__(now, m.seen_busy(pod, now)))
    m.run(tail_seconds=0)
    # Ready at 0, beats at 0, 5, 10...; the job starts at 7: invisible until the beat at 10.
    assert seen == {6.0: 0, 8.0: 0, 9.9: 0, 10.0: 1, 12.0: 1}


def test_churn_counts_ups_soon_after_downs() -> None:
    m = _model([])
    m.scaled(0.0, up=True)
    m.scaled(10.0, up=False)
    m.scaled(70.0, up=True)  # 60 s after the down: churn
    m.scaled(200.0, up=True)
    assert m.stats.scale_events == 4
    assert m.stats.churn_ups == 1
