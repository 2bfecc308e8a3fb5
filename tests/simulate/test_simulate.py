"""`queueworker simulate` on tiny traces: every policy runs; ours never cuts a job."""

from __future__ import annotations

from pathlib import Path

import pytest

from queueworker.cli import main as cli
from queueworker.simulate.cli import POLICIES, simulate
from queueworker.simulate.trace import TraceJob

from support.engine_specs import spec

TRACE = """# tiny
arrival,run_seconds,queue
0,30,default
1,30,default
2,5,default
60,120,default
61,2,default
62,2,default
400,10,default
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    qw = tmp_path / "qw.yaml"
    qw.write_text(
        "redis: {url: 'redis://r:6379/0'}\n"
        "queues: [{name: default}]\n"
        "template: {spec: {containers: [{name: w, image: x}]}}\n"
        "scaling: {maxReplicas: 5, idleSecondsBeforeZero: 30}\n"
    )
    return qw, trace


@pytest.mark.parametrize("policy", POLICIES)
def test_cli_runs_every_policy(files: tuple[Path, Path], policy: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    qw, trace = files
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace), "--policy", policy,
                "--pod-start-seconds", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{policy}: 7/7 jobs")
    assert "worker-seconds" in out
    assert "interrupted by scale-down" in out


def test_ours_interrupts_nothing_keda_does() -> None:
    # Waves of long jobs: KEDA counts only waiting jobs, so once they all run it
    # scales the busy pods away; ours counts them as demand.
    jobs = [TraceJob(w * 900.0 + i, 600.0, "default") for w in range(4) for i in range(6)]
    s = spec({"maxReplicas": 10})
    ours = simulate(s, jobs, "ours", 15)
    keda = simulate(s, jobs, "keda-hpa", 15)
    # Counting in-flight jobs keeps KEDA from cutting them while the waves run,
    # but ours still costs no more.
    keda_inflight = simulate(s, jobs, "keda-hpa-inflight", 15)
    assert keda_inflight.completed == len(jobs)
    assert ours.worker_seconds <= keda_inflight.worker_seconds
    assert ours.completed == len(jobs)
    assert ours.interrupted == 0
    # KEDA's 300 s cooldown sees an empty list while 600 s jobs run: it cuts them,
    # and the last one is cut at every retry and never finishes.
    assert keda.interrupted > 0
    assert keda.completed < len(jobs)
    assert ours.wait_p95 < keda.wait_p95


def test_gpu_cap_limits_pods() -> None:
    jobs = [TraceJob(float(i), 60.0, "default") for i in range(10)]
    s = spec({"maxReplicas": 10}, limits={"nvidia.com/gpu": 2})
    r = simulate(s, jobs, "ours", 5, gpus=4)
    assert r.max_replicas <= 2
    assert r.completed == 10
    assert r.interrupted == 0


def test_horizon_pays_its_whole_budget() -> None:
    jobs = [TraceJob(0.0, 10.0, "default")]
    r = simulate(spec({"maxReplicas": 3}), jobs, "horizon", 0)
    assert r.worker_seconds == pytest.approx(3 * r.duration)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("arrival,run_seconds\n1,abc\n", "run_seconds must be a number of seconds, got 'abc'"),
        ("arrival,run_seconds\n-1,3\n", "arrival must be >= 0"),
        ("when,how_long\n1,2\n", "missing arrival, run_seconds"),
        ("", "the trace is empty"),
    ],
)
def test_bad_trace_is_named(files: tuple[Path, Path], content: str, message: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    qw, trace = files
    trace.write_text(content)
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_spec_is_named(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    qw, trace = files
    qw.write_text("queues: []\n")
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace)]) == 2
    assert "spec.queues" in capsys.readouterr().err
    assert cli(["simulate", "--spec", str(qw.with_name("nope.yaml")), "--trace",
                str(trace)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_pods_run_concurrency_jobs_at_once() -> None:
    jobs = [TraceJob(0.0, 100.0, "default") for _ in range(8)]
    s = spec({"maxReplicas": 10, "targetBacklogPerReplica": 4})
    r = simulate(s, jobs, "ours", 10, concurrency=4)
    # 8 jobs, 4 per pod: two pods, every job starts once they are ready.
    assert r.max_replicas == 2
    assert r.completed == 8
    assert r.interrupted == 0
    assert r.wait_max <= 10 + s.scaling.poll_interval_seconds
    one = simulate(s, jobs, "ours", 10, concurrency=1)
    assert one.wait_max > r.wait_max


def test_shipped_traces_are_what_the_generator_makes(tmp_path: Path) -> None:
    import subprocess
    import sys

    traces = Path(__file__).resolve().parents[2] / "benchmarks" / "traces"
    subprocess.run([sys.executable, str(traces / "generate.py"), "--seed", "7", "--out",
                    str(tmp_path)], check=True, capture_output=True, timeout=120)
    made = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert made == ["bursts.csv", "diurnal.csv", "gpu.csv", "quiet.csv", "steady.csv"]
    for name in made:
        assert (tmp_path / name).read_bytes() == (traces / name).read_bytes(), name


def test_spec_from_a_multi_document_manifest(files: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    qw, trace = files
    bare = qw.read_text()
    indented = "".join("  " + line + "\n" for line in bare.splitlines())
    qw.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n"
        "apiVersion: queueworker.dev/v1alpha1\nkind: QueueWorker\nmetadata: {name: w}\n"
        "spec:\n" + indented.replace("name: default", "name: other")
    )
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ours: 7/7 jobs")
    assert "trace queues default are not in the spec" in captured.err
    qw.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    assert cli(["simulate", "--spec", str(qw), "--trace", str(trace)]) == 2
    assert "no QueueWorker manifest" in capsys.readouterr().err
