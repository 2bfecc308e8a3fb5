"""What the operator sees of a fleet, per queue layout: the one table `simulate --layout` reads.

Two things decide how safe a scale-down is (docs/workers/README.md):

- **running jobs**: whether the layout's reader counts jobs in flight
  (`exact`), counts them only as fresh as the workers' last beat (`beats`:
  Sidekiq's `<identity>:work` hashes are rewritten at each beat), or cannot
  see them at all (`hidden`: a bare `list` has no in-flight key, so the engine
  sees only waiting jobs and may scale to zero while jobs run);
- **busy pods**: which pods run a job (observe/busy/): `exact` (a registry
  written when a job starts: RQ's worker hash, BullMQ's `pb` field of a named
  worker, Dramatiq's ack sets of a broker named after its pod), `beats` (as
  fresh as the last heartbeat: the native worker's 5 s, arq's per-pod health
  record at its `health_check_interval`, Sidekiq's 10 s from 7.0, Celery's
  2 s events, which the operator confirms with `inspect active` right before
  a scale-down: `confirmed`), `blocked`
  (CLIENT LIST, observe/busy/clients.py: a connection blocked waiting for work
  is a free slot, so a pod with a free slot reads idle and a full one
  unknown) or `unknown` (Dramatiq and arq workers not named after their pod,
  plain lists and streams, Laravel without `block_for`):
  observe/heartbeats.pod_state counts an unknown pod as not busy and last
  among idle ones, and the engine's victims among unknown
  pods are picked by name, which for a Deployment's pods is a random suffix,
  so a busy pod is as likely to go as an idle one.

And what a stopped busy pod does (its stop path, docs/workers/<library>.md):
it finishes its jobs within the grace (`drain.graceSeconds`, the pod's
terminationGracePeriodSeconds; for native workers their drain deadline,
graceSeconds - deadlineMarginSeconds) unless the library stops sooner:
Sidekiq pushes unfinished jobs back after `-t` (25 s), Dramatiq after
`--worker-shutdown-timeout` (600 s), arq cancels running jobs at SIGTERM unless its
`job_completion_wait` lets them finish.
What is still running then is cut (interrupted) and run again.

tests/simulate/test_visibility.py checks this table against observe/busy/
(which layouts have an adapter, a subscription or CLIENT LIST), the layout
readers (which count in-flight jobs) and validation_warnings.STOP_TIMEOUTS.
"""

from __future__ import annotations

from dataclasses import dataclass

from queueworker.operator.api import QueueLayout, QueueWorkerSpec

EXACT, BEATS, HIDDEN, BLOCKED, UNKNOWN = "exact", "beats", "hidden", "blocked", "unknown"
NATIVE_BEAT_SECONDS = 5.0  # the native worker's heartbeat interval (worker/config.py)


@dataclass(frozen=True)
class Visibility:
    name: str
    layout: QueueLayout  # the spec layout this row is a case of
    running: str  # EXACT | BEATS | HIDDEN
    busy: str  # EXACT | BEATS | BLOCKED | UNKNOWN
    beat_seconds: float = 0.0  # how old a beat may be (running or busy from BEATS)
    confirmed: bool = False  # busy asked again, exactly, right before a scale-down
    stop_seconds: float | None = None  # a busy worker's own limit after SIGTERM; None: the grace
    # Victims quieted first, removed once a beat says quiet and idle (engine/quiet.py).
    quiet: bool = False
    how: str = ""  # where the facts come from, for the table's last column

    @property
    def native(self) -> bool:
        return self.layout == QueueLayout.native


L = QueueLayout
TABLE: dict[str, Visibility] = {v.name: v for v in (
    Visibility("native", L.native, EXACT, BEATS, NATIVE_BEAT_SECONDS,
               how="in-flight ZSET; heartbeats every 5 s; drain deadline, then handed back"),
    Visibility("rq", L.rq, EXACT, EXACT,
               how="StartedJobRegistry; rq:workers hashes (state, current_job); warm shutdown"),
    Visibility("sidekiq", L.sidekiq, BEATS, BEATS, 10.0, stop_seconds=25.0, quiet=True,
               how="<identity>:work and busy, rewritten every 10 s (5 s up to 6.x); "
               "quieted first (TSTP), removed once quiet and idle; -t 25 s, then pushed back"),
    Visibility("celery", L.celery, EXACT, BEATS, 2.0, confirmed=True,
               how="unacked; worker-heartbeat events every 2 s, inspect active before a "
               "scale-down; warm shutdown"),
    Visibility("bullmq", L.bullmq, EXACT, EXACT,
               how="active list; `pb` of named workers; worker.close() on SIGTERM"),
    Visibility("bullmq-unnamed", L.bullmq, EXACT, BLOCKED,
               how="active list; CLIENT LIST: blocked in BZPOPMIN while a slot is free"),
    Visibility("laravel", L.laravel, EXACT, BLOCKED,
               how=":reserved; CLIENT LIST: blocked in BLPOP (block_for) when idle; "
               "finishes its job"),
    Visibility("laravel-polling", L.laravel, EXACT, UNKNOWN,
               how=":reserved; no block_for: never blocked, busy unknown"),
    Visibility("dramatiq", L.dramatiq, EXACT, EXACT, stop_seconds=600.0,
               how="__acks__ sets; broker_id named after the pod (opt-in): its acks; "
               "--worker-shutdown-timeout 600 s"),
    Visibility("dramatiq-unnamed", L.dramatiq, EXACT, UNKNOWN, stop_seconds=600.0,
               how="__acks__ sets; random broker ids (busy unknown); "
               "--worker-shutdown-timeout 600 s"),
    # As docs/workers/arq.md recommends: job_completion_wait above the longest job,
    # so a pod stopped within a beat of taking a job finishes it (inside the grace).
    Visibility("arq", L.arq, EXACT, BEATS, 2.0,
               how="in-progress keys; health record per pod (opt-in), j_ongoing every 2 s; "
               "job_completion_wait above the longest job"),
    Visibility("arq-cancel", L.arq, EXACT, BEATS, 2.0, stop_seconds=0.0,
               how="as arq, with arq's default job_completion_wait 0: SIGTERM cancels "
               "running jobs"),
    Visibility("arq-unnamed", L.arq, EXACT, UNKNOWN, stop_seconds=0.0,
               how="in-progress keys; one shared health key (busy unknown); "
               "SIGTERM cancels running jobs"),
    Visibility("stream", L.stream, EXACT, UNKNOWN,
               how="consumer group pending entries; no worker registry"),
    Visibility("list", L.list, HIDDEN, UNKNOWN,
               how="LLEN only: running jobs and busy pods unseen"),
)}
del L

# Least visible first: a spec mixing layouts is simulated as its blindest queue.
_RANK = {(HIDDEN, UNKNOWN): 0, (EXACT, UNKNOWN): 1, (EXACT, BLOCKED): 2, (BEATS, BEATS): 3,
         (EXACT, BEATS): 4, (EXACT, EXACT): 5}


def names() -> tuple[str, ...]:
    return tuple(TABLE)


def get(name: str) -> Visibility:
    """The row called `name`; ValueError naming the choices otherwise."""
    try:
        return TABLE[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(TABLE)}") from None


def for_spec(spec: QueueWorkerSpec) -> Visibility:
    """The row of the spec's own layout (the blindest one when its queues mix layouts)."""
    rows = [TABLE[q.layout.value] for q in spec.queues]
    return min(rows, key=lambda v: (_RANK[(v.running, v.busy)], v.name))


def grace(v: Visibility, spec: QueueWorkerSpec) -> float:
    """How long a stopped busy pod may finish its jobs before they are cut."""
    if v.native:
        return float(spec.drain.worker_deadline_seconds)
    limit = float(spec.drain.grace_seconds)
    return limit if v.stop_seconds is None else min(limit, v.stop_seconds)


def table_markdown() -> str:
    """The table as the docs print it (README's simulate section cites this module)."""
    lines = ["| --layout | running jobs | busy pods | stop path / source |", "|---|---|---|---|"]
    for v in TABLE.values():
        busy = v.busy + (f" ({v.beat_seconds:g} s)" if v.busy == BEATS else "")
        busy += ", confirmed before a scale-down" if v.confirmed else ""
        busy += ", quieted before a scale-down" if v.quiet else ""
        running = v.running + (f" ({v.beat_seconds:g} s)" if v.running == BEATS else "")
        lines.append(f"| {v.name} | {running} | {busy} | {v.how} |")
    return "\n".join(lines)
