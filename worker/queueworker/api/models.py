"""Request and response bodies of the HTTP API (pydantic: they are also its OpenAPI schema)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# What a queue name and a job id may not contain, as a search pattern (JSON Schema
# ``not: {pattern}``, the same check in Python): no anchors, so every regex engine (ECMA in
# clients, Rust in pydantic, Python's re) reads it alike. Queue names: no braces (the Redis
# Cluster hash tag), spaces or control characters. Job ids: printable ASCII only, as the
# worker takes an id (scripts.py usable_id; the failed store may hold junk under such ids).
# Neither may hold "%": a client that builds the URL without escaping it (schemathesis did)
# would reach another name ("%41" is "A"); the CLI still reaches such a name.
QUEUE_FORBIDDEN = r"[{}%\x00-\x20\x7f]"
ID_FORBIDDEN = r"[^!-~]|%"


def none_of(forbidden: str, what: str) -> AfterValidator:
    rx = re.compile(forbidden)

    def check(value: str | None) -> str | None:
        if value is not None and rx.search(value):
            raise ValueError(f"{what} {value!r} has a character it may not have "
                             f"(one of {forbidden})")
        return value

    return AfterValidator(check)


# What job.Backoff.parse reads: seconds, a list of seconds, or exp[:BASE[:CAP]].
_NUM = r"[0-9]+(\.[0-9]+)?"
BACKOFF_PATTERN = rf"^({_NUM}(,{_NUM})*|exp(onential)?(:{_NUM}(:{_NUM})?)?)$"


class Problem(BaseModel):
    """Every error answer: ``detail`` says what is wrong (and what to do)."""

    detail: Any


class EnqueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(description="JSON the handler receives")
    priority: int | None = Field(None, ge=1, le=10,
                                 description="1..10, 10 runs first; default 5")
    delay: float | None = Field(None, ge=0, le=365 * 86400, description="seconds before it may run")
    timeout: float | None = Field(None, gt=0, le=7 * 86400,
                                  description="seconds per attempt (e.g. 2 x audio duration + 60)")
    max_tries: int | None = Field(None, ge=1, le=1000,
                                  description="attempts before it fails for good (1: fail fast)")
    backoff: str | None = Field(None, max_length=200, pattern=BACKOFF_PATTERN,
                                description="between tries: 10 | 10,30,60 | exp:BASE:CAP")
    unique_key: str | None = Field(None, min_length=1, max_length=200)
    # At least a second: the enqueue script sets the unique key with PX floor(s * 1000), and
    # Redis refuses PX 0 (the Producer lets unique_for under 1 ms through to that error).
    unique_for: float | None = Field(None, ge=1, le=30 * 86400)
    handler: str | None = Field(None, min_length=1, max_length=200)
    max_exceptions: int | None = Field(None, ge=1, le=1000,
                                       description="fail once this many attempts raised")
    result_ttl: int | None = Field(None, ge=0, le=30 * 86400,
                                   description="seconds the result is kept")


class Enqueued(BaseModel):
    id: str
    queue: str
    created: bool = Field(description="false: a job with the same unique_key was queued already")


class JobStatus(BaseModel):
    """A job's hash (see the job module's table), without its payload and traceback."""

    model_config = ConfigDict(extra="allow")

    id: str
    queue: str | None = None
    state: str | None = None
    deliveries: int | None = None
    tries: int | None = None
    max_tries: int | None = None


class JobOutcome(BaseModel):
    """Where a job stands: its result once done, its error once failed, its last progress."""

    id: str
    state: str = Field(description="waiting | delayed | running | done | failed")
    finished: bool = Field(description="done or failed; false: still queued or running")
    queue: str = ""
    result: Any = Field(None, description="what the handler returned (when done)")
    error: str = Field("", description="why it failed (when failed)")
    progress: float | None = Field(None, description="the handler's last report, 0..1")
    progress_detail: Any = None
    tries: int = 0
    finished_at: float | None = None
    unreadable: str = Field("", description="why an encrypted result or error could not be "
                                            "opened here (this server lacks the key)")


class QueueStatus(BaseModel):
    queue: str
    waiting: int
    delayed: int
    in_flight: int
    oldest_waiting_seconds: float | None = None
    by_priority: dict[str, int] | None = Field(
        None, description="waiting jobs per priority level (1..10), when the worker has them")
    paused: bool | None = None
    stats: dict[str, int] = Field(default_factory=dict,
                                  description="counters: enqueued, completed, failed, retried")


class Queues(BaseModel):
    queues: list[QueueStatus]


class RunningJob(BaseModel):
    id: str
    queue: str
    started_at: float


class WorkerStatus(BaseModel):
    id: str
    pod: str
    host: str
    pid: int
    queues: list[str]
    state: str
    in_flight: list[RunningJob]
    processed: int
    failed: int
    started_at: float
    beat_at: float


class Workers(BaseModel):
    workers: list[WorkerStatus]
    busy: int
    idle: int


class FailedJob(BaseModel):
    id: str
    queue: str | None
    failed_at: float | None
    tries: int
    error: str


class FailedJobs(BaseModel):
    failed: list[FailedJob]


class Count(BaseModel):
    count: int


class Paused(BaseModel):
    queue: str
    paused: bool


class Health(BaseModel):
    status: str
    redis: bool
