"""`queueworker simulate --compare` and `--plot`: one table for every policy, and
backlog, replicas and wait over time drawn to a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from queueworker.cli import main as cli
from queueworker.simulate.cli import simulate
from queueworker.simulate.compare import COMPARED
from queueworker.simulate.timeline import Timeline
from queueworker.simulate.trace import TraceJob

from support.engine_specs import spec

TRACE = "arrival,run_seconds\n" + "".join(f"{i * 3},{20 + i % 7}\n" for i in range(40))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    qw = tmp_path / "qw.yaml"
    qw.write_text(
        "redis: {url: 'redis://r:6379/0'}\n"
        "queues: [{name: default}]\n"
        "template: {spec: {containers: [{name: w, image: x}]}}\n"
        "scaling: {maxReplicas: 8, idleSecondsBeforeZero: 30}\n"
    )
    return qw, trace


def _args(files: tuple[Path, Path], *more: str) -> list[str]:
    qw, trace = files
    return ["simulate", "--spec", str(qw), "--trace", str(trace), "--pod-start-seconds", "10",
            *more]


def test_compare_prints_one_row_per_policy(files: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_args(files, "--compare")) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    for column in ("p95", "mean", "worker-s", "interrupted", "unfinished", "events", "never"):
        assert column in header, lines[0]
    policies = [line.split()[0] for line in lines[2:2 + len(COMPARED)]]
    assert policies == list(COMPARED)
    assert lines[2].split()[4] == "1.00"  # ours against itself
    assert lines[-1].startswith("40 jobs;")


def test_compare_json_matches_single_runs(files: tuple[Path, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_args(files, "--compare", "--json")) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == list(COMPARED)
    assert cli(_args(files, "--policy", "keda-hpa-same-grace", "--json")) == 0
    alone = json.loads(capsys.readouterr().out)
    assert rows[2] == alone


def test_compare_and_policy_exclude_each_other(files: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(_args(files, "--compare", "--policy", "ours"))
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".png", ".svg", ".html"])
def test_plot_writes_the_file(files: tuple[Path, Path], tmp_path: Path, suffix: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"p{suffix}"
    assert cli(_args(files, "--compare", "--plot", str(out))) == 0
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    elif suffix == ".svg":
        assert b"<svg" in data[:2000]
    else:
        text = data.decode()
        assert "data:image/png;base64," in text  # self-contained: the picture is inline
        assert "keda-hpa-same-grace" in text  # and the table under its title
    assert len(data) < 300_000


def test_plot_needs_a_known_suffix(files: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_args(files, "--plot", str(tmp_path / "p.jpg"))) == 2
    assert "must end in .png, .svg, .html" in capsys.readouterr().err
    assert not (tmp_path / "p.jpg").exists()


def test_timeline_follows_the_fleet() -> None:
    jobs = [TraceJob(float(i), 30.0, "default") for i in range(10)]
    tl = Timeline(interval=5.0)
    r = simulate(spec({"maxReplicas": 20}), jobs, "ours", 10, timeline=tl)
    assert len(tl.starts) == r.completed == 10
    assert max(tl.waiting) >= 5  # the jobs waited for the pods to start
    assert max(tl.busy) == r.max_replicas
    assert all(r <= d for r, d in zip(tl.ready, tl.desired, strict=True))
    assert tl.desired[-1] == tl.ready[-1] == 0  # idle long enough: scaled to zero
    xs, ys = tl.wait_p95()
    assert len(xs) == len(ys) > 0
    assert max(y for y in ys if y == y) == pytest.approx(r.wait_max)


def test_the_issue_14_traces_are_seeded() -> None:
    # benchmarks/traces/generate.py: the same seed gives the same jobs; each
    # workload has the shape its name says.
    import importlib.util
    import random

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "traces" / "generate.py"
    loader = importlib.util.spec_from_file_location("generate", path)
    assert loader is not None
    assert loader.loader is not None
    gen = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(gen)
    scenarios = gen.SCENARIOS

    def make(name: str, seed: int) -> list[tuple[float, float, str]]:
        return sorted(scenarios[name](random.Random(f"{seed}-{name}")))

    assert make("audio", 3) == make("audio", 3) != make("audio", 4)
    assert all(60 <= run <= 720 for _, run, _ in make("audio", 1))
    assert all(20 <= run <= 90 for _, run, _ in make("imagegen", 1))
    email = make("email", 1)
    assert len(email) > 15_000
    assert max(run for _, run, _ in email) < 1
    nightly = make("nightly", 1)
    assert len(nightly) == 4000
    assert max(t for t, _, _ in nightly) <= 30
    assert len(make("quietday", 1)) < 120


def test_start_time_must_be_a_time_with_a_zone(files: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_args(files, "--start-time", "2026-03-02T06:00")) == 2
    assert "is not an ISO 8601 time with a zone" in capsys.readouterr().err
    assert cli(_args(files, "--start-time", "2026-03-02T06:00+01:00")) == 0
