"""Specs that are valid but can lose or cut jobs: warnings, never errors.

A pure function of the spec (`warnings`), used by the operator's report step
(SpecValid reason `CanLoseJobs` + a Warning Event), `queueworker validate` and
`queueworker local`. What is checked, per the libraries' own stop paths
(docs/workers/):

- the drain grace (`drain.graceSeconds`, the pod's terminationGracePeriodSeconds)
  against the stop timeout the worker is given or defaults to: Sidekiq's `-t`
  (25 s: after it, Sidekiq pushes the jobs back, and a SIGKILL before that
  loses them), Dramatiq's `--worker-shutdown-timeout` (600,000 ms), Laravel's
  `--timeout` (60 s: the longest a job runs before the worker kills it), Celery's
  `--time-limit` when declared (its warm shutdown has no limit of its own);
- a `list` layout: nothing shows which jobs run, so a scale-down can stop a
  busy pod;
- arq: SIGTERM cancels running jobs (re-run later), and no pod's busy state
  is known;
- a command run through `sh -c` / `bash -c` without `exec`: the shell is PID 1
  and does not pass SIGTERM on; the worker is SIGKILLed at the grace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from queueworker.operator import api

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})


@dataclass(frozen=True)
class SpecWarning:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class StopTimeout:
    """A library's stop (or job) timeout flag and its default, in seconds."""

    layout: api.QueueLayout
    flags: tuple[str, ...]
    default: float | None  # None: only when declared
    scale: float  # the flag's unit in seconds
    what: str


STOP_TIMEOUTS = (
    StopTimeout(api.QueueLayout.sidekiq, ("-t", "--timeout"), 25.0, 1.0,
                "Sidekiq's shutdown timeout (-t): after it the jobs are pushed back; a SIGKILL "
                "before that loses them"),
    StopTimeout(api.QueueLayout.dramatiq, ("--worker-shutdown-timeout",), 600.0, 0.001,
                "Dramatiq's --worker-shutdown-timeout: it waits that long for running "
                "messages"),
    StopTimeout(api.QueueLayout.laravel, ("--timeout",), 60.0, 1.0,
                "Laravel's --timeout: a stopping worker finishes its job, which may run "
                "that long"),
    StopTimeout(api.QueueLayout.celery, ("--time-limit",), None, 1.0,
                "Celery's --time-limit: a warm shutdown waits for tasks that may run that "
                "long"),
)


def flag_value(argv: Sequence[str], flags: Sequence[str]) -> str | None:
    """The value of the last of `flags` in argv (`-t 25`, `--timeout=25`, `-t25`)."""
    found: str | None = None
    for i, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(flag + "="):
                found = arg[len(flag) + 1:]
            elif len(flag) == 2 and arg.startswith(flag) and arg[2:].isdigit():
                found = arg[2:]
    return found


def _argv(container: api.Container) -> list[str]:
    extra = container.model_extra or {}
    return [str(a) for a in (extra.get("command") or []) + (extra.get("args") or [])]


def shell_wrapped(argv: Sequence[str]) -> bool:
    """`sh -c "worker ..."` without `exec`: the shell stays PID 1 and swallows SIGTERM."""
    if len(argv) < 3 or os.path.basename(argv[0]) not in SHELLS or "-c" not in argv[1:3]:
        return False
    script = argv[argv.index("-c", 1) + 1] if argv.index("-c", 1) + 1 < len(argv) else ""
    last = script.replace("\n", ";").replace("&&", ";").split(";")[-1].strip()
    return not last.startswith("exec ")


def _stop_timeouts(spec: api.QueueWorkerSpec, argv: list[str], where: str
                   ) -> list[SpecWarning]:
    out: list[SpecWarning] = []
    grace = spec.drain.grace_seconds
    layouts = {q.layout for q in spec.queues}
    for rule in STOP_TIMEOUTS:
        if rule.layout not in layouts:
            continue
        raw = flag_value(argv, rule.flags)
        try:
            value = float(raw) * rule.scale if raw is not None else rule.default
        except ValueError:
            continue
        if value is not None and grace <= value:
            given = "set" if raw is not None else "default"
            out.append(SpecWarning("spec.drain.graceSeconds", (
                f"{grace}s is not longer than {rule.what} ({value:g}s, {given} in {where}): "
                "a stopped busy pod is SIGKILLed mid-job; make the grace longer")))
    return out


def warnings(spec: api.QueueWorkerSpec) -> list[SpecWarning]:
    """Everything in `spec` that can lose or cut jobs (empty when nothing does)."""
    out: list[SpecWarning] = []
    for i, c in enumerate(spec.template.spec.containers):
        where = f"spec.template.spec.containers[{i}]"
        argv = _argv(c)
        if shell_wrapped(argv):
            out.append(SpecWarning(f"{where}.command", (
                f"runs through `{os.path.basename(argv[0])} -c` without `exec`: the shell is "
                "PID 1 and does not pass SIGTERM on, so the worker never drains and is "
                "SIGKILLed at the grace; use the command itself or `exec` it")))
        if i == 0:
            out += _stop_timeouts(spec, argv, f"{where}.command")
    for i, q in enumerate(spec.queues):
        if q.layout == api.QueueLayout.list:
            out.append(SpecWarning(f"spec.queues[{i}].layout", (
                "'list' has no view of running jobs: in-flight jobs are not counted and busy "
                "pods are not known, so a scale-down can stop a pod mid-job; use the "
                "library's own layout")))
        elif q.layout == api.QueueLayout.arq:
            out.append(SpecWarning(f"spec.queues[{i}].layout", (
                "arq cancels running jobs on SIGTERM (they run again later) and no pod's "
                "busy state is known: a scale-down can cut a job; set the worker's "
                "job_completion_wait below drain.graceSeconds")))
    return out
