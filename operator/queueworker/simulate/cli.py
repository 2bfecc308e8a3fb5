"""`queueworker simulate`: replay a job trace through a scaling policy.

    queueworker simulate --spec qw.yaml --trace trace.csv
                         [--policy ours|keda-hpa|keda-hpa-same-grace|horizon|
                                   keda-hpa-inflight | --compare]
                         [--plot FILE.png|.svg|.html]
                         [--pod-start-seconds S] [--gpus N] [--concurrency N]
                         [--beat-seconds S] [--layout NAME[,NAME...]|all] [--json]

Prints the queue wait (p50/p95/max), the cost in worker-seconds, how often
replicas changed, how many jobs a scale-down cut off and the worker-seconds of
pods that never ran a job. `--compare` replays the trace through ours,
keda-hpa (both graces) and horizon and prints one table (compare.py);
`--plot` draws backlog, replicas and wait over time (plot.py); `--layout`
models what ours sees per queue layout (visibility.py; several: one row
each). See policies.py for what each policy models.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from queueworker.common.errors import QueueworkerError
from queueworker.engine import resources
from queueworker.operator import kubectl_yaml
from queueworker.operator.api import QueueWorkerSpec
from queueworker.operator.validation import SpecError, parse_manifest, parse_spec
from queueworker.simulate import trace as simulate_trace
from queueworker.simulate import visibility
from queueworker.simulate.model import Model
from queueworker.simulate.policies import Horizon, KedaHpa, Ours
from queueworker.simulate.timeline import Timeline

POLICIES = ("ours", "keda-hpa", "keda-hpa-same-grace", "horizon", "keda-hpa-inflight")
BEAT_SECONDS = visibility.NATIVE_BEAT_SECONDS
TAIL_SECONDS = 900.0  # keep running after the last job so idle cost is counted


@dataclass(frozen=True)
class Result:
    policy: str
    jobs: int
    completed: int
    wait_p50: float
    wait_p95: float
    wait_max: float
    wait_mean: float
    worker_seconds: float
    busy_seconds: float
    scale_events: int
    interrupted: int
    max_replicas: int
    duration: float
    unfinished: int = 0
    never_ran_pods: int = 0
    never_ran_seconds: float = 0.0
    terminating_seconds: float = 0.0
    churn_ups: int = 0
    layout: str = "native"  # what ours saw (visibility.TABLE); "-" for the other policies


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def gpu_of(spec: QueueWorkerSpec) -> tuple[str, int]:
    tmpl = spec.template.to_wire()["spec"]
    resource = spec.gpu.resource_name or resources.find_gpu_resource(tmpl) or "nvidia.com/gpu"
    return resource, max(1, resources.pod_request(tmpl, resource))


def simulate(
    spec: QueueWorkerSpec,
    jobs: Sequence[simulate_trace.TraceJob],
    policy: str = "ours",
    pod_start_seconds: float = 20.0,
    gpus: int | None = None,
    seed: int = 1,
    concurrency: int | None = None,
    beat_seconds: float | None = None,
    timeline: Timeline | None = None,
    prefetch: int = 0,
    beats_say_buffered: bool = True,
    start_time: float = 0.0,
    layout: str | None = None,
) -> Result:
    """Replay `jobs`; pods run `concurrency` jobs at once (default 1: the worker's
    concurrency is not part of the spec, and targetBacklogPerReplica is a target,
    not a pod's capacity). `timeline`, if given, is filled as the run goes.
    `prefetch`: jobs a worker takes beyond its free slots (0: the native
    worker's adaptive default for jobs of more than a few milliseconds);
    `beats_say_buffered`: ours is told how many each pod holds (PodState.buffered).
    `start_time`: epoch seconds of the trace's t=0 (for minReplicasSchedules).
    `layout`: a row of visibility.TABLE, what ours sees of running jobs and busy
    pods and how a stopped busy pod stops (default: the spec's own layout);
    `beat_seconds`: how old a heartbeat may be (default: the layout's)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    vis = visibility.for_spec(spec) if layout is None else visibility.get(layout)
    if beat_seconds is None:
        beat_seconds = vis.beat_seconds
    queues = [q.name for q in spec.queues]
    # Jobs of a queue the spec does not watch go to its first queue: the
    # operator would never see them otherwise (the CLI says so).
    jobs = [j if j.queue in queues else replace(j, queue=queues[0]) for j in jobs]
    resource, per = gpu_of(spec)
    slots = None if gpus is None else gpus // per
    model = Model(jobs, queues, pod_start_seconds, slots,
                  drain_seconds=spec.drain.worker_deadline_seconds,
                  concurrency=concurrency or 1, beat_seconds=beat_seconds, prefetch=prefetch)
    if timeline is not None:
        model.record(timeline)
    max_processes = spec.scaling.max_replicas
    if policy == "ours":
        Ours(spec, model, per, resource, told_buffered=beats_say_buffered, epoch=start_time,
             vis=vis, seed=seed)
    elif policy.startswith("keda-hpa"):
        grace = (float(spec.drain.worker_deadline_seconds) if policy == "keda-hpa-same-grace"
                 else KedaHpa.DEFAULT_GRACE)
        KedaHpa(spec, model, seed, with_in_flight=policy == "keda-hpa-inflight",
                grace_seconds=grace)
    else:
        max_processes = max_processes if slots is None else min(max_processes, slots)
        Horizon(spec, model, max(1, max_processes))
    stats = model.run(TAIL_SECONDS)
    cost = stats.worker_seconds
    if policy == "horizon":
        cost = max_processes * stats.end  # servers sized for maxProcesses, always on
    w = stats.waits
    return Result(
        policy=policy,
        jobs=len(jobs),
        completed=stats.completed,
        wait_p50=percentile(w, 50),
        wait_p95=percentile(w, 95),
        wait_max=max(w, default=0.0),
        wait_mean=sum(w) / len(w) if w else 0.0,
        worker_seconds=cost,
        busy_seconds=stats.busy_seconds,
        scale_events=stats.scale_events,
        interrupted=stats.interrupted,
        max_replicas=stats.max_replicas,
        duration=stats.end,
        unfinished=stats.unfinished,
        never_ran_pods=stats.never_ran_pods,
        never_ran_seconds=stats.never_ran_seconds,
        terminating_seconds=stats.terminating_seconds,
        churn_ups=stats.churn_ups,
        layout=vis.name if policy == "ours" else "-",
    )


class SimulateError(QueueworkerError, ValueError):
    """Input the simulator cannot use; the message says what and where."""


def load_spec(path: str) -> QueueWorkerSpec:
    """The QueueWorker in a YAML file (a manifest among others, or a bare spec).

    Raises OSError, yaml.YAMLError, SpecError or SimulateError on bad input.
    """
    docs = kubectl_yaml.load_all(Path(path).read_text())  # as `kubectl apply` would send it
    workers = [d for d in docs if isinstance(d, dict) and d.get("kind") == "QueueWorker"]
    if len(workers) > 1:
        raise SimulateError(f"{len(workers)} QueueWorkers in one file; give one")
    if workers:
        return parse_manifest(workers[0])
    if len(docs) == 1 and not (isinstance(docs[0], dict) and "kind" in docs[0]):
        return parse_spec(docs[0])
    raise SimulateError("no QueueWorker manifest (kind: QueueWorker) or bare spec found")


def format_result(r: Result) -> str:
    who = r.policy if r.layout in ("native", "-") else f"{r.policy} [layout {r.layout}]"
    return (
        f"{who}: {r.completed}/{r.jobs} jobs; wait p50 {r.wait_p50:.1f}s "
        f"p95 {r.wait_p95:.1f}s max {r.wait_max:.1f}s; worker-seconds {r.worker_seconds:.0f} "
        f"(busy {r.busy_seconds:.0f}); scale events {r.scale_events} "
        f"({r.churn_ups} scale-ups within 60 s of a scale-down); "
        f"interrupted by scale-down {r.interrupted}; peak replicas {r.max_replicas}; "
        f"pods that never ran a job {r.never_ran_pods} ({r.never_ran_seconds:.0f} "
        f"worker-seconds); terminating {r.terminating_seconds:.0f} worker-seconds"
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="queueworker simulate", description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True, help="QueueWorker manifest or spec (YAML)")
    ap.add_argument("--trace", required=True, help="CSV: arrival,run_seconds,queue")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--compare", action="store_true",
                     help="replay through ours, keda-hpa, keda-hpa-same-grace and horizon; "
                     "print one table")
    how.add_argument("--policy", choices=POLICIES, default=None,
                    help="ours (engine.decide), keda-hpa (KEDA list scaler + HPA defaults, "
                    "30 s grace), keda-hpa-same-grace (the grace ours gets), horizon "
                    "(Laravel Horizon's auto balancer on a fixed budget) or "
                    "keda-hpa-inflight (keda-hpa also counting in-flight jobs); default ours")
    ap.add_argument("--plot", default=None, metavar="FILE",
                    help="draw backlog, replicas (desired, ready, busy) and wait over time "
                    "per policy into FILE (.png, .svg or .html; needs queueworker[plot])")
    ap.add_argument("--pod-start-seconds", type=float, default=20.0,
                    help="from pod created to worker ready (default 20)")
    ap.add_argument("--gpus", type=int, default=None,
                    help="GPUs in the cluster; pods beyond them wait Pending")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="jobs a pod runs at once (default 1)")
    ap.add_argument("--prefetch", type=int, default=0,
                    help="jobs a worker takes beyond its free slots and holds in a buffer "
                    "(default 0: the native worker's adaptive prefetch takes none for jobs "
                    "of more than a few ms; a worker started with --prefetch N: N)")
    ap.add_argument("--start-time", default=None, metavar="ISO",
                    help="wall-clock time of the trace's t=0, e.g. 2026-03-02T06:00+01:00 "
                    "(minReplicasSchedules read it; default 1970-01-01T00:00Z)")
    ap.add_argument("--layout", default=None, metavar="NAME[,NAME...]",
                    help="what ours sees of running jobs and busy pods, and how a stopped "
                    "busy pod stops: one of " + ", ".join(visibility.names()) + " or all "
                    "(default: the spec's layout; several: one row each, the table in "
                    "simulate/visibility.py)")
    ap.add_argument("--beat-seconds", type=float, default=None,
                    help="worker heartbeat interval: ours sees a pod busy only once a beat "
                    "says so (default: the layout's, 5 for native; 0: exact)")
    ap.add_argument("--seed", type=int, default=1, help="victim choice of the ReplicaSet")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.pod_start_seconds < 0 or (args.beat_seconds or 0) < 0 or args.prefetch < 0 or any(
        v is not None and v < 1 for v in (args.gpus, args.concurrency)
    ):
        print("queueworker simulate: --pod-start-seconds, --beat-seconds and --prefetch "
              "must be >= 0, "
              "--gpus and "
              "--concurrency >= 1", file=sys.stderr)
        return 2
    try:
        args.layouts = _layouts(args.layout, args.compare or args.policy not in (None, "ours"))
    except ValueError as exc:
        print(f"queueworker simulate: --layout: {exc}", file=sys.stderr)
        return 2
    try:
        start_time = _start_time(args.start_time)
    except ValueError:
        print(f"queueworker simulate: --start-time {args.start_time!r} is not an ISO 8601 time "
              "with a zone (e.g. 2026-03-02T06:00+01:00)", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.spec)
        jobs = simulate_trace.load(args.trace, spec.queues[0].name)
    except OSError as exc:
        print(f"queueworker simulate: {args.spec}: cannot read ({exc.strerror})",
              file=sys.stderr)
        return 2
    except (SpecError, SimulateError) as exc:
        print(f"queueworker simulate: {args.spec}: {exc}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"queueworker simulate: {args.spec}: not YAML ({exc})", file=sys.stderr)
        return 2
    except simulate_trace.TraceError as exc:
        print(f"queueworker simulate: {exc}", file=sys.stderr)
        return 2
    watched = {q.name for q in spec.queues}
    others = sorted({j.queue for j in jobs} - watched)
    if others:
        print(f"queueworker simulate: note: trace queues {', '.join(others)} are not in the "
              f"spec; their jobs count as queue {spec.queues[0].name!r}", file=sys.stderr)
    return _run(args, spec, jobs, start_time)


def _layouts(text: str | None, others: bool) -> list[str | None]:
    """The layouts asked for (None: the spec's own); `others`: policies beside ours run."""
    if text is None:
        return [None]
    names = list(visibility.names()) if text == "all" else [n.strip() for n in text.split(",")]
    for name in names:
        visibility.get(name)  # ValueError naming the choices
    if others and len(names) > 1:
        raise ValueError("several layouts are compared for policy ours only; give one with "
                         "--compare or --policy (it is what ours sees)")
    return list(names)


def _start_time(text: str | None) -> float:
    if text is None:
        return 0.0
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when.timestamp()


def _run(args: argparse.Namespace, spec: QueueWorkerSpec,
         jobs: list[simulate_trace.TraceJob], start_time: float) -> int:
    from queueworker.simulate import compare, plot

    if args.plot and Path(args.plot).suffix.lower() not in plot.FORMATS:
        print(f"queueworker simulate: --plot {args.plot}: the file must end in "
              f"{', '.join(plot.FORMATS)}", file=sys.stderr)
        return 2
    policies = compare.COMPARED if args.compare else (args.policy or "ours",)
    several = len(args.layouts) > 1
    runs = [(p, lay) for p in policies for lay in args.layouts]
    end = max((j.arrival + j.run_seconds for j in jobs), default=0.0) + TAIL_SECONDS
    results, timelines = [], []
    for policy, layout in runs:
        tl = Timeline.for_duration(end, spec.scaling.poll_interval_seconds) if args.plot else None
        results.append(simulate(spec, jobs, policy, args.pod_start_seconds, args.gpus,
                                args.seed, args.concurrency, args.beat_seconds, tl,
                                args.prefetch, start_time=start_time, layout=layout))
        if tl is not None:
            timelines.append((f"{policy} [{layout}]" if several else policy, tl))
    text = (compare.table(results) if args.compare
            else compare.layouts_table(results) if several else format_result(results[0]))
    if args.json:
        out: Any = ([asdict(r) for r in results] if args.compare or several
                    else asdict(results[0]))
        print(json.dumps(out))
    else:
        print(text)
    if args.plot:
        title = (f"{Path(args.trace).name} with {Path(args.spec).name} "
                 f"(pod start {args.pod_start_seconds:g} s"
                 + (f", {args.gpus} GPUs" if args.gpus else "") + ")")
        try:
            plot.write(args.plot, timelines, title, text)
        except plot.PlotError as exc:
            print(f"queueworker simulate: {exc}", file=sys.stderr)
            return 2
    return 0
