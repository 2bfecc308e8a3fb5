"""FETCH's reply read into jobs (the hot path of ``broker.Broker.fetch_batch``): the
common case straight from the reply's bytes, the unusual ones (junk filed by the script,
fields that are not UTF-8) with every check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from queueworker.worker import keys
from queueworker.worker.job import Job


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


@dataclass(frozen=True)
class Junk:
    """An entry a FETCH found unrunnable and filed in the failed store (scripts.junk)."""

    id: str  # its id in the failed store
    queue: str
    reason: str  # no_job_hash | bad_entry
    error: str


@dataclass(frozen=True)
class Undecodable:
    """A job taken whose stored fields are not all UTF-8: it fails at once (reason
    ``undecodable``), and those fields are stored again escaped (``\\xNN``) so that the
    failed store and every reader can show it."""

    job: Job
    error: str
    escaped: dict[str, str]  # field name -> its value, bytes outside UTF-8 escaped


@dataclass
class Fetched:
    """What one FETCH brought: jobs to run, entries it filed as junk, undecodable jobs."""

    jobs: list[Job]
    junk: list[Junk]
    undecodable: list[Undecodable]


# The job hash fields FETCH returns, in order (fetch_lua.py; the 12th is the level).
FETCHED_FIELDS = ("queue", "payload", "tries", "max_tries", "backoff", "timeout",
                  "retry_until", "enqueued_at", "handler", "concurrency_key",
                  "concurrency_limit")


def _undecodable(raw_id: Any, deliveries: int, raw_fields: Sequence[Any],
                 exc: UnicodeDecodeError) -> Undecodable:
    escaped: dict[str, str] = {}
    for name, x in zip(FETCHED_FIELDS, raw_fields, strict=False):
        if type(x) is bytes:
            try:
                x.decode()
            except UnicodeDecodeError:
                escaped[name] = x.decode(errors="backslashreplace")
    fields = [x.decode(errors="backslashreplace") if type(x) is bytes else x
              for x in raw_fields]
    where = ", ".join(escaped)
    return Undecodable(_job(raw_id, deliveries, fields),
                       f"Undecodable: job hash field(s) {where} not UTF-8 ({exc.reason} at "
                       f"byte {exc.start}); stored again with the bytes escaped as \\xNN",
                       escaped)


def _job(raw_id: Any, deliveries: int, fields: Sequence[Any]) -> Job:
    (queue, payload, tries, max_tries, backoff, timeout, retry_until, enqueued_at, handler,
     ck, _, level) = fields
    return Job.fetched(_text(raw_id), queue, payload, deliveries, tries, max_tries, backoff,
                       timeout, retry_until, enqueued_at, handler, ck,
                       keys.priority_level(level))


# (tries, max_tries, backoff, timeout, retry_until) as stored -> as a Job holds them: most
# jobs of a queue share these, so a FETCH reply is read with one dict lookup per job
# rather than five parses (the slow path fills it; bounded: cleared when full).
_Options = tuple[int, int, Any, float | None, float | None]
_OPTIONS: dict[tuple[Any, ...], _Options] = {}
_OPTIONS_MAX = 1024


def _fast_job(raw_id: bytes, d: int, f: Sequence[Any]) -> Job | None:
    """The common case of a fetched job, read straight from the reply's bytes; None when
    anything is unusual (then ``_job`` reads it, with every check)."""
    q, payload, tries, max_tries, backoff, timeout, retry_until, enq, handler, ck, _, lvl = f
    opts = _OPTIONS.get((tries, max_tries, backoff, timeout, retry_until))
    if opts is None or not enq or type(lvl) is not int or not 1 <= lvl <= 10:
        return None
    try:
        enqueued_at = float(enq)
        return Job(id=raw_id.decode(), queue=q.decode(),
                   payload_text=payload.decode() if payload else "", state="running",
                   deliveries=d, tries=opts[0], max_tries=opts[1], backoff=opts[2],
                   timeout=opts[3], retry_until=opts[4],
                   enqueued_at=enqueued_at or keys.enqueued_at_from_id(raw_id),
                   handler=handler.decode() if handler else "",
                   concurrency_key=ck.decode() if ck else "", priority=lvl)
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def _remember(f: Sequence[Any], job: Job) -> None:
    if len(_OPTIONS) >= _OPTIONS_MAX:
        _OPTIONS.clear()
    _OPTIONS[tuple(f[2:7])] = (job.tries, job.max_tries, job.backoff, job.timeout,
                               job.retry_until)


def parse_fetched(raw: Sequence[Any]) -> Fetched:
    """FETCH's reply, read without decoding (bytes): a stored field that is not UTF-8
    must fail its job, not the whole batch (whose jobs would be in flight already)."""
    out = Fetched([], [], [])
    jobs = out.jobs
    for i in range(0, len(raw), 3):
        d = int(raw[i + 1])
        if d < 0:
            out.junk.append(Junk(_text(raw[i]), *(_text(x) for x in raw[i + 2][:3])))
            continue
        job = _fast_job(raw[i], d, raw[i + 2])
        if job is not None:
            jobs.append(job)
            continue
        try:
            fields = [x.decode() if type(x) is bytes else x for x in raw[i + 2]]
        except UnicodeDecodeError as exc:
            out.undecodable.append(_undecodable(raw[i], d, raw[i + 2], exc))
            continue
        job = _job(raw[i], d, fields)
        _remember(raw[i + 2], job)
        jobs.append(job)
    return out
