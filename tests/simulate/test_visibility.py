"""`queueworker simulate --layout`: what the operator sees per layout, and what blindness costs.

The table (simulate/visibility.py) is checked against the project's own facts
(observe/busy/ adapters, the list reader, the libraries' stop timeouts); the
runs check that no job is cut where busy pods are known, even with a grace
far shorter than the jobs, and that a blind layout does cut them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from queueworker.cli import main as cli
from queueworker.observe import busy
from queueworker.operator.api import QueueLayout
from queueworker.operator.validation_warnings import STOP_TIMEOUTS
from queueworker.simulate import visibility
from queueworker.simulate.cli import simulate
from queueworker.simulate.trace import TraceJob
from queueworker.simulate.visibility import BEATS, BLOCKED, EXACT, HIDDEN, TABLE, UNKNOWN

from support.engine_specs import spec


def test_every_api_layout_has_its_row() -> None:
    assert {v.layout for v in TABLE.values()} == set(QueueLayout)
    for layout in QueueLayout:  # the spec's own layout is a row of its own name
        assert TABLE[layout.value].layout == layout


def test_busy_column_is_what_observe_busy_reads() -> None:
    for layout in QueueLayout:
        v = TABLE[layout.value]
        if layout == QueueLayout.native:
            want = {BEATS}
        elif layout in busy.LISTENED:  # Celery: heartbeat events, confirmed
            want = {BEATS}
            assert v.confirmed
        elif layout in busy.ADAPTERS:  # a worker registry read in the poll
            want = {EXACT, BEATS}
        elif layout in busy.clients.LAYOUTS:  # CLIENT LIST only
            want = {BLOCKED}
        else:
            want = {UNKNOWN}
        assert v.busy in want, layout
    # The variants: an unnamed BullMQ worker is seen through CLIENT LIST only,
    # a Laravel worker without block_for never blocks.
    assert QueueLayout.bullmq in busy.clients.LAYOUTS
    assert TABLE["bullmq-unnamed"].busy == BLOCKED
    assert TABLE["laravel-polling"].busy == UNKNOWN
    # Dramatiq and arq workers not named after their pod (the opt-in) report nothing.
    assert set(busy.OPT_IN) == {QueueLayout.dramatiq, QueueLayout.arq}
    assert TABLE["dramatiq-unnamed"].busy == TABLE["arq-unnamed"].busy == UNKNOWN
    assert [v.name for v in TABLE.values() if v.running == HIDDEN] == ["list"]
    assert sum(v.confirmed for v in TABLE.values()) == len(busy.LISTENED)


def test_stop_limits_are_the_libraries_defaults() -> None:
    defaults = {t.layout: t.default for t in STOP_TIMEOUTS}
    assert TABLE["sidekiq"].stop_seconds == defaults[QueueLayout.sidekiq]
    assert TABLE["dramatiq"].stop_seconds == defaults[QueueLayout.dramatiq]
    assert TABLE["arq-cancel"].stop_seconds == 0  # SIGTERM cancels running jobs
    assert TABLE["arq"].stop_seconds is None  # job_completion_wait covers the job (docs)
    s = spec({"maxReplicas": 4})
    assert visibility.grace(TABLE["native"], s) == s.drain.worker_deadline_seconds
    assert visibility.grace(TABLE["rq"], s) == s.drain.grace_seconds
    assert visibility.grace(TABLE["sidekiq"], s) == min(25, s.drain.grace_seconds)


def test_a_spec_is_simulated_as_its_blindest_queue() -> None:
    s = spec({"maxReplicas": 4}, queues=[{"name": "a", "layout": "rq"},
                                         {"name": "b", "layout": "list"}])
    assert visibility.for_spec(s).name == "list"
    assert visibility.for_spec(spec({"maxReplicas": 4})).name == "native"


# Long jobs beside bursts of short ones, three times: after each burst the
# engine scales down while the long jobs still run, with a grace (20 s) far
# shorter than them, so any busy pod it stops has its job cut.
JOBS = [TraceJob(w * 1500.0 + i, 400.0 if i < 3 else 4.0, "default")
        for w in range(3) for i in range(24)]
SHORT_GRACE = {"graceSeconds": 20, "deadlineMarginSeconds": 5}


def _run(layout: str, seed: int = 1) -> tuple[int, int]:
    s = spec({"maxReplicas": 10, "idleSecondsBeforeZero": 30,
              "scaleDown": {"stabilizationSeconds": 0}})
    s = s.model_copy(update={"drain": s.drain.model_copy(update={
        "grace_seconds": SHORT_GRACE["graceSeconds"],
        "deadline_margin_seconds": SHORT_GRACE["deadlineMarginSeconds"]})})
    r = simulate(s, JOBS, "ours", 10, seed=seed, layout=layout)
    assert r.layout == layout
    return r.interrupted, r.completed


# Sidekiq's busy threads are as old as its last beat (10 s), so a pod that took a
# job since looks idle; it is quieted first and removed once a beat says it is quiet
# and idle (engine/quiet.py), so no job is cut there either.
@pytest.mark.parametrize("layout", ["native", "rq", "celery", "bullmq", "laravel", "sidekiq",
                                    "dramatiq", "arq"])
def test_no_job_is_cut_where_busy_pods_are_known(layout: str) -> None:
    for seed in (1, 2):
        assert _run(layout, seed) == (0, len(JOBS))


def test_blind_layouts_cut_long_jobs() -> None:
    # `list` sees no running job: once the bursts are done it scales to zero.
    cut, done = _run("list")
    assert cut >= 3
    assert done < len(JOBS)  # one is cut at every try and never finishes
    # Busy unknown, running counted: never below the pods the in-flight count
    # needs, but which pod goes is a guess (by name): some seed cuts a job.
    assert max(_run("dramatiq-unnamed", seed)[0] for seed in (1, 2, 3, 4)) > 0
    # arq cancels a stopped pod's jobs at once, whatever the grace.
    assert _run("arq-unnamed")[0] > 0


def test_cli_layouts_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival,run_seconds\n" + "".join(f"{j.arrival},{j.run_seconds}\n"
                                                       for j in JOBS[:24]))
    qw = tmp_path / "qw.yaml"
    qw.write_text("redis: {url: 'redis://r:6379/0'}\nqueues: [{name: default, layout: rq}]\n"
                  "template: {spec: {containers: [{name: w, image: x}]}}\n"
                  "scaling: {maxReplicas: 5}\n")
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace)]) == 0
    assert capsys.readouterr().out.startswith("ours [layout rq]: 24/24 jobs")
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace), "--layout", "all"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:-1]]
    assert rows == list(TABLE)
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace),
                "--layout", "native,nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown layout 'nope'" in err
    assert "bullmq-unnamed" in err
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace), "--compare",
                "--layout", "rq,list"]) == 2
    assert "give one" in capsys.readouterr().err
