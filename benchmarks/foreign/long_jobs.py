"""Issue 13 item 6 at the issue's own sizes: other libraries' real workers, 30-60 s jobs.

For each library (RQ, Celery, Dramatiq, arq, BullMQ, Sidekiq, Laravel
`queue:work`): a burst of long jobs (30, 40, 50, 60 s) interleaved with short
ones (1 s) under `queueworker local`, up to 4 replicas, 0 -> N -> 0. The long
jobs end at different times, so the scale-downs 4 -> 3 -> 2 -> 1 happen while
long jobs still run: whether a busy replica outlives the idle ones is tested
for real. Every job logs its own start and finish (`<marks>/<name>.start|.done`,
`<pid> <epoch>` per run; the job code is the tests', tests/support/local_foreign.py)
and the replica a run belonged to is read from its process's HOSTNAME (local
mode sets it to the replica name, as a pod's).

    nice -n 19 .venv/bin/python benchmarks/foreign/long_jobs.py --libs rq,celery
    .venv/bin/python benchmarks/foreign/long_jobs.py --table /tmp/qw-long-jobs/results.jsonl

Per library: jobs enqueued / finished / lost / run twice / cut (a run whose
start has no finish from the same process), the scale events, the scale-downs
that happened while a long job ran, which replicas were asked to stop while
they ran a job, SIGKILLs at the grace, wall time (first enqueue to back at 0).
Results: benchmarks/RELIABILITY.md ("Foreign workers with 30-60 s jobs").
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from libraries import LIBRARIES, TESTS_LOCAL, Jobs, Setup  # noqa: E402 (after sys.path)

from support.local_foreign import manifest  # noqa: E402
from support.local_proc import LocalProc, local_cmd  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

Runs = dict[str, list[tuple[int, float]]]
EVENT = re.compile(r"ts=(\S+) .*?event=(\S+)(.*)$")


def burst(longs: list[float], shorts: int, short_s: float) -> Jobs:
    """The long jobs spread through the short ones: L S S S S S L S S S S S ..."""
    jobs: Jobs = []
    per = shorts // max(len(longs), 1)
    s = 0
    for i, seconds in enumerate(longs):
        jobs.append((f"long{i}", seconds))
        take = per if i < len(longs) - 1 else shorts - s
        jobs += [(f"short{s + k}", short_s) for k in range(take)]
        s += take
    return jobs


def write_manifest(tmp: Path, url: str, lib: str, setup: Setup, max_replicas: int) -> Path:
    path = manifest(tmp, url, lib, setup.queue, setup.command, setup.env, grace=setup.grace)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["spec"]["scaling"].update(maxReplicas=max_replicas, **setup.scaling)
    for env in doc["spec"]["template"]["spec"]["containers"][0]["env"]:
        if env["name"] == "PYTHONPATH":  # the tests' job modules and rq_marks.py
            env["value"] = f"{TESTS_LOCAL}:{HERE}"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


class HostSampler(threading.Thread):
    """pid -> replica of every job run, read from /proc/<pid>/environ while it runs.

    HOSTNAME is inherited by whatever a worker forks (RQ's work horse, Celery's
    and Dramatiq's pool processes), whatever session they move to.
    """

    def __init__(self, marks: Path) -> None:
        super().__init__(daemon=True)
        self.marks = marks
        self.host: dict[int, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for pid, _ in (r for runs in read_runs(self.marks, "start").values() for r in runs):
                if pid not in self.host:
                    self._look(pid)

    def _look(self, pid: int) -> None:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return  # ended before we looked: its replica stays unknown
        for item in env:
            if item.startswith(b"HOSTNAME="):
                self.host[pid] = item[9:].decode()


def read_runs(marks: Path, suffix: str) -> Runs:
    out: Runs = {}
    for f in marks.glob(f"*.{suffix}"):
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        out[f.stem] = [(int(p), float(t)) for p, t in (ln.split() for ln in lines if ln.strip())]
    return out


def events(output: str) -> list[tuple[float, str, dict[str, str]]]:
    """(epoch, event, fields) of local mode's structured log lines."""
    out = []
    for line in output.splitlines():
        m = EVENT.search(line)
        if m:
            at = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            out.append((at.timestamp(), m[2], dict(re.findall(r"(\w+)=(\S+)", m[3]))))
    return out


def run_one(lib: str, args: argparse.Namespace) -> dict[str, Any]:
    longs = [float(x) for x in args.long.split(",")]
    wait = int(max(longs)) + 15  # the stop timeout for libraries that stop busy replicas blind
    jobs = burst(longs, args.shorts, args.short)
    with tempfile.TemporaryDirectory(prefix=f"qw-long-{lib}-") as d:
        tmp = Path(d)
        marks = tmp / "marks"
        marks.mkdir()
        server = RedisServer().start()
        try:
            setup = LIBRARIES[lib](tmp, server.url, marks, wait)
            path = write_manifest(tmp, server.url, lib, setup, args.max_replicas)
            output, t0, t1, code = drive(path, marks, setup, jobs, max(longs))
            (args.out / f"{lib}.log").write_text(output, encoding="utf-8")
            shutil.copytree(marks, args.out / f"{lib}-marks", dirs_exist_ok=True)
            result = analyse(lib, setup, jobs, marks, output, t0, t1)
        finally:
            server.stop()
            server.cleanup()
    result["local_exit"] = code
    return result


def drive(path: Path, marks: Path, setup: Setup, jobs: Jobs,
          longest: float) -> tuple[str, float, float, int | None]:
    """Run local mode through the burst and back to 0; (output, start, end, exit code)."""
    local = LocalProc(local_cmd(path))
    sampler = HostSampler(marks)
    sampler.start()
    names = {n for n, _ in jobs}
    code: int | None = None
    try:
        local.wait_for("status ", timeout=120)
        t0 = time.time()
        setup.send(jobs)
        deadline = time.monotonic() + 3 * longest + 120  # room for every long job run twice
        while time.monotonic() < deadline and set(read_runs(marks, "done")) < names:
            time.sleep(0.5)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _at_zero(local.lines):
            time.sleep(0.5)
        t1 = time.time()
        code = local.interrupt(timeout=180)
    finally:
        local.kill()
        sampler.done.set()
        sampler.join(2)
    output = local.output + "\n" + "\n".join(
        f"job_host pid={p} host={h}" for p, h in sorted(sampler.host.items()))
    return output, t0, t1, code


def _at_zero(lines: list[str]) -> bool:
    status = [ln for ln in lines[-50:] if ln.startswith("status ")]
    return bool(status) and " desired=0 running=0 " in status[-1] + " "


def analyse(lib: str, setup: Setup, jobs: Jobs, marks: Path, output: str,
            t0: float, t1: float) -> dict[str, Any]:
    starts, dones = read_runs(marks, "start"), read_runs(marks, "done")
    host = {int(p): h for p, h in re.findall(r"job_host pid=(\d+) host=(\S+)", output)}
    evs = events(output)
    runs: list[dict[str, Any]] = []  # one per start line
    for name, seconds in jobs:
        for pid, began in starts.get(name, []):
            ends = [t for p, t in dones.get(name, []) if p == pid and t >= began]
            runs.append({"job": name, "seconds": seconds, "pid": pid, "replica": host.get(pid),
                         "start": began, "end": min(ends) if ends else None})
    scaled = [(t, int(f["previous"]), int(f["desired"])) for t, e, f in evs if e == "scaled"]
    # a cut run ended when its replica did (killed), not at the end of the benchmark
    exited = {f["name"]: t for t, e, f in evs if e == "replica.exited"}
    for r in runs:
        r["until"] = r["end"] or exited.get(r["replica"], t1)
    long_runs = [r for r in runs if r["job"].startswith("long")]
    busy_stops = [
        {"replica": f["name"], "at": round(t - t0, 1),
         "running": [r["job"] for r in runs if r["replica"] == f["name"]
                     and r["start"] <= t and (r["end"] is None or r["end"] > t)]}
        for t, e, f in evs if e == "replica.draining"]
    busy_stops = [b for b in busy_stops if b["running"]]
    return {
        "library": lib, "stop": setup.stop, "enqueued": len(jobs),
        "finished": sum(1 for n, _ in jobs if dones.get(n)),
        "lost": sorted(n for n, _ in jobs if not dones.get(n)),
        "run_twice": sorted(n for n, _ in jobs if len(starts.get(n, [])) > 1),
        "cut": [f"{r['job']}@{r['replica']}" for r in runs if r["end"] is None],
        "unmapped_runs": sum(1 for r in runs if r["replica"] is None),
        "scale": [0, *[d for _, _, d in scaled]],
        "downs_during_long": sum(1 for t, p, d in scaled if d < p and any(
            r["start"] < t < r["until"] for r in long_runs)),
        "zero_while_running": any(d == 0 and any(r["start"] < t < r["until"]
                                                  for r in runs) for t, _, d in scaled),
        "busy_stopped": busy_stops,
        "killed_past_grace": sum(1 for _, e, _ in evs if e == "replica.killed_past_grace"),
        "pushed_back": output.count("Pushed"),  # Sidekiq's hard shutdown log
        "wall_s": round(t1 - t0, 1),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


HEADER = ("| library | run | stop settings | enqueued | finished | lost | run twice | cut "
          "| scale events | scale-downs while a long job ran | busy replica stopped "
          "| SIGKILL at grace | wall |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def row(r: dict[str, Any]) -> str:
    busy = "; ".join(f"{b['replica']} at +{b['at']} s ({', '.join(b['running'])})"
                     for b in r["busy_stopped"]) or "no"
    return (f"| {r['library']} | {r.get('run', 1)} | {r['stop']} | {r['enqueued']} "
            f"| {r['finished']} "
            f"| {len(r['lost'])} | {len(r['run_twice'])} | {len(r['cut'])} "
            f"| {len(r['scale']) - 1}: {' → '.join(map(str, r['scale']))} "
            f"| {r['downs_during_long']} | {busy} | {r['killed_past_grace']} "
            f"| {r['wall_s']:.0f} s |")


def table(files: list[Path]) -> str:
    """One row per library and run (a run: one file, unless its lines say `run`)."""
    results = [{"run": i, **json.loads(line)} for i, f in enumerate(files, 1)
               for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    order = list(LIBRARIES)
    results.sort(key=lambda r: (order.index(r["library"]), r["run"]))
    return "\n".join([HEADER, *map(row, results)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--libs", default=",".join(LIBRARIES), help="comma-separated")
    ap.add_argument("--long", default="30,40,50,60", help="long jobs' seconds")
    ap.add_argument("--shorts", type=int, default=20)
    ap.add_argument("--short", type=float, default=1.0, help="short jobs' seconds")
    ap.add_argument("--max-replicas", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "qw-long-jobs")
    ap.add_argument("--table", type=Path, nargs="+",
                    help="print the table of results.jsonl files (one a run) and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    unknown = set(args.libs.split(",")) - set(LIBRARIES)
    if unknown:
        ap.error(f"unknown --libs {sorted(unknown)}; known: {', '.join(LIBRARIES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    bad = 0
    for lib in args.libs.split(","):
        result = run_one(lib, args)
        with open(args.out / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
        print(HEADER + "\n" + row(result), flush=True)
        bad += bool(result["lost"] or result["cut"] or result["run_twice"]
                    or result["busy_stopped"] or result["killed_past_grace"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
