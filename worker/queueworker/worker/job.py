"""A job: its id, its options, its hash in Redis, and the retry policy.

Pure code (no I/O). The job hash (``keys.job(id)``) holds strings only:

==================== =========================================================
field                meaning
==================== =========================================================
queue                the queue it belongs to
payload              JSON text (what the handler gets, decoded)
enqueued_at          epoch seconds (the producer's clock, as in the id)
state                waiting | delayed | running | done | failed
deliveries           times a worker took it (a crash or a drain hand-back
                     shows here; a redelivery after a crash increments it)
tries                attempts that ended in an exception or a timeout; the
                     job fails for good when tries reaches max_tries
lost                 leases that ran out (the worker died or hung)
max_tries            see ``tries``
backoff              ``10`` (fixed), ``10,30,60`` (list), ``exp:2:300``
                     (exponential from 2 s, capped at 300 s, with jitter)
timeout              seconds; empty: the worker's default
retry_until          epoch seconds; no retry is scheduled after it
unique_key           see ``keys.unique``
concurrency_key      see ``keys.concurrency`` (with concurrency_limit)
handler              optional name, for a worker with several handlers
priority             1 (lowest) .. 10 (highest), default 5: which waiting list
                     of its queue the job is in (``keys.waiting``)
worker, started_at   while running
finished_at          when done
result               the handler's return value, JSON (results.py); expires
                     with the hash (``result_ttl``: per job, else the worker's)
progress,            the handler's last ``job.progress`` (progress.py)
progress_detail
exceptions,          attempts that ended in an exception, and the limit
max_exceptions       (control.py); ``releases``: ``Release`` count
waited               someone waits on it: SETTLE pushes a done token
error, traceback,
failed_at            when failed; ``last_error`` after a retried failure
==================== =========================================================
"""

from __future__ import annotations

import functools
import json
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from queueworker.common.errors import QueueworkerError
from queueworker.worker import crypto, keys

DEFAULT_MAX_TRIES = 3
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_UNIQUE_FOR = 3600.0
DEFAULT_PRIORITY = keys.DEFAULT_PRIORITY

BackoffSpec = float | int | str | Sequence[float] | None


class PayloadError(QueueworkerError, ValueError):
    """A payload that cannot be enqueued (not JSON, or too large)."""


class BadPayloadError(QueueworkerError):
    """A job whose stored payload is not valid JSON (it fails without a retry)."""


def new_id(now: float | None = None, queue: str | None = None) -> str:
    """``<13-digit enqueue ms>-<16 hex>@<queue>``: sortable by enqueue time, unique, and
    naming its queue, so its hash is in the queue's hash slot (keys.job). ValueError
    when the queue's name makes it longer than an id may be (keys.MAX_ID_BYTES)."""
    ms = int((time.time() if now is None else now) * 1000)
    head = f"{ms:0{keys.ID_TIME_DIGITS}d}-{secrets.token_hex(8)}"
    if queue is None:
        return head
    job_id = head + keys.id_suffix(queue)
    if len(job_id) > keys.MAX_ID_BYTES:
        raise ValueError(f"queue name {queue[:40]!r}... is too long: a job id names its queue "
                         f"and may have at most {keys.MAX_ID_BYTES} bytes")
    return job_id


def encode_payload(payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"payload is not JSON-serialisable ({exc}); queueworker stores JSON payloads, "
            "so encode binary data yourself (for example base64 text) before enqueueing"
        ) from None
    size = len(text.encode())
    if max_bytes and size > max_bytes:
        raise PayloadError(
            f"payload is {size} bytes, over the limit of {max_bytes} bytes; store large data "
            "elsewhere (object storage) and enqueue a reference, or raise max_payload_bytes"
        )
    return text


# --------------------------------------------------------------------------- backoff


@dataclass(frozen=True)
class Backoff:
    """fixed: ``delays=(d,)``; list: ``delays=(10, 30, 60)`` (the last repeats);
    exponential: ``base * 2**(n-1)`` capped at ``cap``, with equal jitter
    (half fixed, half random) so that retries of many jobs spread out."""

    delays: tuple[float, ...] = ()
    base: float = 0.0
    cap: float = 0.0

    @property
    def exponential(self) -> bool:
        return not self.delays

    def delay(self, tries: int, rand: random.Random | None = None) -> float:
        """Seconds to wait before the retry after the ``tries``-th failure (1-based)."""
        n = max(1, tries)
        if self.delays:
            return self.delays[min(n, len(self.delays)) - 1]
        full = min(self.cap, self.base * math.pow(2, n - 1))
        r = (rand or random).random()
        return full / 2 + r * full / 2

    def encode(self) -> str:
        if self.delays:
            return ",".join(_num(d) for d in self.delays)
        return f"exp:{_num(self.base)}:{_num(self.cap)}"

    @classmethod
    def parse(cls, spec: BackoffSpec) -> Backoff:
        """``None`` -> exponential 2 s..300 s; a number; a list; ``"exp"``,
        ``"exp:BASE:CAP"``, ``"exponential"``; or the text ``encode`` writes."""
        if spec is None or spec == "":
            return DEFAULT_BACKOFF
        if isinstance(spec, bool):
            raise ValueError(f"bad backoff {spec!r}")
        if isinstance(spec, int | float):
            return cls(delays=(_non_negative(spec),))
        if isinstance(spec, str):
            text = spec.strip()
            if text.startswith(("exp", "exponential")):
                parts = text.split(":")
                base = float(parts[1]) if len(parts) > 1 else DEFAULT_BACKOFF.base
                cap = float(parts[2]) if len(parts) > 2 else DEFAULT_BACKOFF.cap
                return cls(base=_non_negative(base), cap=_non_negative(cap))
            try:
                return cls(delays=tuple(_non_negative(float(p)) for p in text.split(",")))
            except ValueError:
                raise ValueError(
                    f"bad backoff {spec!r}: use seconds (10), a list (10,30,60) or exp:BASE:CAP"
                ) from None
        delays = tuple(_non_negative(float(d)) for d in spec)
        if not delays:
            raise ValueError("backoff list is empty")
        return cls(delays=delays)


DEFAULT_BACKOFF = Backoff(base=2.0, cap=300.0)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _non_negative(x: float) -> float:
    if x < 0 or math.isnan(x):
        raise ValueError(f"negative or NaN delay {x!r}")
    return float(x)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class JobOptions:
    delay: float = 0.0
    max_tries: int = DEFAULT_MAX_TRIES
    backoff: BackoffSpec = None
    timeout: float | None = None
    retry_until: float | None = None
    unique_key: str | None = None
    unique_for: float = DEFAULT_UNIQUE_FOR
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    handler: str | None = None
    priority: int = DEFAULT_PRIORITY
    max_exceptions: int | None = None
    result_ttl: int | None = None

    def fields(self) -> dict[str, str]:
        """The hash fields these options set (validated)."""
        keys.check_priority(self.priority)
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.concurrency_key and self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be at least 1")
        # The enqueue script holds the key for PX = unique_for in whole milliseconds:
        # under 1 ms it would send PX 0, which Redis refuses.
        if self.unique_key and self.unique_for < 0.001:
            raise ValueError(f"unique_for must be at least 0.001 s (got {self.unique_for!r})")
        if self.max_exceptions is not None and self.max_exceptions < 1:
            raise ValueError("max_exceptions must be at least 1")
        if self.result_ttl is not None and self.result_ttl < 0:
            raise ValueError("result_ttl must not be negative")
        # Set only when given: every job's hash pays for a field.
        extra = {name: str(v) for name, v in (("max_exceptions", self.max_exceptions),
                                              ("result_ttl", self.result_ttl)) if v is not None}
        return extra | {
            "max_tries": str(self.max_tries),
            "backoff": Backoff.parse(self.backoff).encode(),
            "timeout": "" if self.timeout is None else _num(self.timeout),
            "retry_until": "" if self.retry_until is None else repr(float(self.retry_until)),
            "unique_key": self.unique_key or "",
            "concurrency_key": self.concurrency_key or "",
            "concurrency_limit": str(self.concurrency_limit) if self.concurrency_key else "",
            "handler": self.handler or "",
            "priority": str(self.priority),
        }


def new_job_fields(
    queue: str, payload_text: str, options: JobOptions, now: float
) -> dict[str, str]:
    out = {
        "queue": queue,
        "payload": payload_text,
        "enqueued_at": repr(now),
        "deliveries": "0",
        "tries": "0",
        "lost": "0",
    }
    out.update(options.fields())
    return out


# --------------------------------------------------------------------------- job


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


@functools.lru_cache(maxsize=256)
def _backoff(text: str | None) -> Backoff:
    try:
        return Backoff.parse(text or None)
    except ValueError:
        return DEFAULT_BACKOFF


@dataclass
class Job:
    """A job as a worker (or a status lookup) sees it."""

    id: str
    queue: str
    payload_text: str
    state: str = "waiting"
    deliveries: int = 0
    tries: int = 0
    max_tries: int = DEFAULT_MAX_TRIES
    backoff: Backoff = DEFAULT_BACKOFF
    timeout: float | None = None
    retry_until: float | None = None
    enqueued_at: float | None = None
    handler: str = ""
    concurrency_key: str = ""
    started_at: float | None = None
    priority: int = DEFAULT_PRIORITY
    fields: dict[str, str] = field(default_factory=dict, repr=False)
    sealed: bool = False  # its payload was encrypted: so are its result and errors
    reporter: Callable[[Job, float, Any], None] | None = field(default=None, repr=False,
                                                                 compare=False)

    @classmethod
    def fetched(cls, job_id: str, queue: str, payload: str, deliveries: int, tries: str | None,
                max_tries: str | None, backoff: str | None, timeout: str | None,
                retry_until: str | None, enqueued_at: str | None, handler: str | None,
                concurrency_key: str | None, priority: int = DEFAULT_PRIORITY) -> Job:
        """A job as FETCH returns it (the fields a worker needs; the hot path)."""
        return cls(
            id=job_id, queue=queue, payload_text=payload or "", state="running",
            deliveries=deliveries, tries=_int(tries),
            max_tries=_int(max_tries, DEFAULT_MAX_TRIES), backoff=_backoff(backoff),
            timeout=_float(timeout), retry_until=_float(retry_until),
            enqueued_at=_float(enqueued_at) or keys.enqueued_at_from_id(job_id),
            handler=handler or "", concurrency_key=concurrency_key or "",
            priority=priority,
        )

    @classmethod
    def from_hash(cls, job_id: str, h: Mapping[str, str]) -> Job:
        backoff = _backoff(h.get("backoff"))
        return cls(
            id=job_id,
            queue=h.get("queue", ""),
            payload_text=h.get("payload", ""),
            state=h.get("state", ""),
            deliveries=_int(h.get("deliveries")),
            tries=_int(h.get("tries")),
            max_tries=_int(h.get("max_tries"), DEFAULT_MAX_TRIES),
            backoff=backoff,
            timeout=_float(h.get("timeout")),
            retry_until=_float(h.get("retry_until")),
            enqueued_at=_float(h.get("enqueued_at")) or keys.enqueued_at_from_id(job_id),
            handler=h.get("handler", ""),
            concurrency_key=h.get("concurrency_key", ""),
            started_at=_float(h.get("started_at")),
            priority=keys.priority_level(h.get("priority")),
            fields=dict(h),
        )

    def payload(self) -> Any:
        """The decoded payload (opened if encrypted: crypto.py); BadPayloadError when it is
        not JSON or cannot be opened."""
        text = self.payload_text
        if crypto.is_sealed(text):
            try:
                text = crypto.open_field(text, self.id, "payload", crypto.process_keyring())
            except crypto.CryptoError as exc:
                raise BadPayloadError(str(exc)) from None
            self.sealed = True
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BadPayloadError(f"payload is not valid JSON ({exc}): "
                             f"{self.payload_text[:80]!r}") from None

    def progress(self, fraction: float, detail: Any = None) -> None:
        """Report progress, 0..1, with an optional JSON ``detail``: stored in the job hash
        and published (progress.py). Returns at once; outside a worker it does nothing."""
        if self.reporter is not None:
            self.reporter(self, fraction, detail)

    def next_retry_delay(self, tries: int, now: float, rand: random.Random | None = None
                         ) -> float | None:
        """Seconds until the retry after failure number ``tries``, or None: fail for good."""
        if tries >= self.max_tries:
            return None
        delay = self.backoff.delay(tries, rand)
        if self.retry_until is not None and now + delay > self.retry_until:
            return None
        return delay

    def info(self, keyring: crypto.Keyring | None = None) -> dict[str, Any]:
        """A JSON-friendly view (status lookups, ``queueworker job ID``); encrypted fields
        are opened with ``keyring`` and shown as ``"(encrypted)"`` without one."""
        out: dict[str, Any] = {"id": self.id}
        for name, value in self.fields.items():
            if crypto.is_sealed(value):
                try:
                    value = crypto.open_field(value, self.id, name, keyring)
                except crypto.CryptoError:
                    out[name] = "(encrypted)"
                    continue
            if name in ("payload", "result", "progress_detail"):
                try:
                    out[name] = json.loads(value)
                except ValueError:
                    out[name] = value
            elif name == "progress":
                out[name] = _float(value)
            elif name in ("deliveries", "tries", "lost", "max_tries", "handed_back", "priority",
                          "exceptions", "max_exceptions", "releases"):
                out[name] = _int(value)
            else:
                out[name] = value
        return out
