"""Schedules: enqueue a job on a cron expression (with a time zone) or every N seconds.

Like Laravel's scheduler / Celery beat / BullMQ job schedulers / arq cron jobs,
but with no separate beat process: every worker started with ``--schedules
pkg.module:SCHEDULES`` registers the definitions in Redis, and every worker's
scheduler loop (scheduler.py) offers the due ticks; one Lua script per tick
compares and advances the schedule's ``next_due``, so exactly one job is
enqueued per tick however many workers run (store.py).

    from queueworker.worker.schedules import Schedule

    SCHEDULES = [
        Schedule("nightly-report", queue="reports", cron="0 3 * * *", tz="Europe/Berlin",
                 payload={"kind": "daily"}),
        Schedule("poll-feeds", queue="default", every=30, missed="skip"),
    ]

Times are whole milliseconds since the epoch. ``every`` ticks fall on multiples
of the period since the epoch, so all workers agree on them without talking.
Cron ticks come from cronsim, which keeps Debian cron's rules across DST
changes: a time in the skipped hour runs once right after the jump, and a
daily job in the repeated hour runs once.

The job enqueued for the tick due at ``T`` ms has the id ``<T, 13 digits>-s-<name>``:
the same tick can never become two jobs, and the id still starts with a time
(``keys.enqueued_at_from_id``: the age of the tick).

Missed ticks (no worker ran, or the schedule was behind): a tick up to
``grace`` seconds late runs as usual. Older ones follow ``missed``: ``skip``
(the default: they are dropped and the schedule goes on from now), ``once``
(one job stands for all of them) or ``all`` (each runs, at most
``MAX_CATCH_UP`` per pass of the loop).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from queueworker.common.errors import QueueworkerError
from queueworker.worker import keys
from queueworker.worker.job import encode_payload
from queueworker.worker.producer import make_options

MISSED_POLICIES = ("skip", "once", "all")
MAX_CATCH_UP = 1000  # ticks one pass of the loop enqueues for one schedule (missed="all")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
# Options a schedule may pass to its jobs (producer.make_options); `delay` makes no
# sense for a tick, and `unique_key` is spelled `overlap=False`.
_OPTIONS = ("max_tries", "backoff", "timeout", "concurrency_key", "concurrency_limit",
            "handler", "unique_for")


class ScheduleError(QueueworkerError, ValueError):
    """A schedule definition that cannot be used (names the schedule and what is wrong)."""


# A schedule's hash and the index of all schedules are not per queue: TICK would span slots.
CLUSTER_SCHEDULES = ("schedules are not supported on a Redis Cluster yet: a schedule's state "
                     "is not in its queue's hash slot. Run the scheduling worker on one Redis "
                     "or behind Sentinel, or enqueue from your own cron")


def schedule_key(name: str, prefix: str = keys.DEFAULT_PREFIX) -> str:
    """HASH: ``spec`` (JSON), ``digest``, ``queue``, ``next_due`` (ms), ``last_due``,
    ``last_job``, ``paused`` ("1"), ``ticks``, ``skipped``."""
    return f"{prefix}:schedule:{name}"


def schedules_index(prefix: str = keys.DEFAULT_PREFIX) -> str:
    """ZSET name -> next due (epoch seconds) of every schedule not paused."""
    return f"{prefix}:schedules"


def queue_schedules(queue: str, prefix: str = keys.DEFAULT_PREFIX) -> str:
    """ZSET name -> next due (epoch seconds) of the queue's schedules not paused: what the
    operator reads to wake a QueueWorker at zero for a due tick."""
    return f"{prefix}:{{{queue}}}:schedules"


def tick_job_id(name: str, due_ms: int, queue: str) -> str:
    """The id of a tick's job: fixed by the tick, and naming its queue (keys.job)."""
    return f"{due_ms:0{keys.ID_TIME_DIGITS}d}-s-{name}{keys.id_suffix(queue)}"


@dataclass(frozen=True)
class Schedule:
    name: str
    queue: str = "default"
    payload: Any = None
    cron: str | None = None
    every: float | None = None  # seconds
    tz: str = "UTC"
    missed: str = "skip"
    grace: float = 60.0  # seconds a tick may be late and still run under every policy
    overlap: bool = True  # False: no new tick while the last one is queued or running
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ScheduleError(f"{where}: the name must be 1-100 of A-Z a-z 0-9 _ . : -")
        if not self.queue or any(c in self.queue for c in "{}"):
            raise ScheduleError(f"{where}: bad queue name {self.queue!r}")
        if (self.cron is None) == (self.every is None):
            raise ScheduleError(f"{where}: give exactly one of cron=... or every=...")
        if self.every is not None and not (isinstance(self.every, int | float)
                                           and self.every >= 0.01):
            raise ScheduleError(f"{where}: every must be a number of seconds >= 0.01")
        try:
            self.zone()
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ScheduleError(f"{where}: unknown time zone {self.tz!r} "
                                "(use an IANA name such as Europe/Berlin)") from None
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now(UTC))
            except (CronSimError, TypeError, ValueError) as exc:
                raise ScheduleError(f"{where}: bad cron expression {self.cron!r} ({exc})"
                                    ) from None
        if self.missed not in MISSED_POLICIES:
            raise ScheduleError(f"{where}: missed must be one of {', '.join(MISSED_POLICIES)}")
        if self.grace < 0:
            raise ScheduleError(f"{where}: grace must not be negative")
        unknown = set(self.options) - set(_OPTIONS)
        if unknown:
            raise ScheduleError(f"{where}: unknown job option(s) {', '.join(sorted(unknown))}; "
                                f"allowed: {', '.join(_OPTIONS)}")
        try:
            make_options(**self.options).fields()
            encode_payload(self.payload)
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"{where}: {exc}") from None

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch ms)."""
        if self.every is not None:
            period = max(1, round(self.every * 1000))
            return (after_ms // period + 1) * period
        assert self.cron is not None
        start = datetime.fromtimestamp(after_ms / 1000, self.zone())
        return round(next(CronSim(self.cron, start)).timestamp() * 1000)

    def describe(self) -> str:
        if self.every is not None:
            return f"every {self.every:g}s"
        return f"cron '{self.cron}' {self.tz}"

    def to_json(self) -> str:
        body = {"name": self.name, "queue": self.queue, "payload": self.payload,
                "cron": self.cron, "every": self.every, "tz": self.tz, "missed": self.missed,
                "grace": self.grace, "overlap": self.overlap, "options": dict(self.options)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise ScheduleError(f"stored schedule is not JSON ({exc})") from None
        return cls.from_dict(body)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Schedule:
        if not isinstance(body, Mapping) or "name" not in body:
            raise ScheduleError(f"a schedule needs at least a name: {body!r}")
        try:
            return cls(**dict(body))
        except TypeError as exc:
            raise ScheduleError(f"schedule {body.get('name')!r}: {exc}") from None


def as_schedules(obj: Any, where: str = "schedules") -> list[Schedule]:
    """A list of ``Schedule`` (or dicts of its fields); names must be unique."""
    if isinstance(obj, Schedule | Mapping):
        obj = [obj]
    if not isinstance(obj, list | tuple):
        raise ScheduleError(f"{where}: expected a list of Schedule, got {type(obj).__name__}")
    out = [s if isinstance(s, Schedule) else Schedule.from_dict(s) for s in obj]
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScheduleError(f"{where}: schedule name(s) used twice: {', '.join(dupes)}")
    return out
