"""Redis key layout of the native queueworker runtime: the contract between the
worker (which writes these keys) and the operator's `native` depth reader and
heartbeat reader (which only read them).

All keys share a prefix (default ``qw``; ``QUEUEWORKER_PREFIX`` / ``--prefix``)
and use a ``{queue}`` hash tag so every key of one queue lands in the same
Redis Cluster slot (Lua scripts touch several of them at once).

Redis Cluster: one layout for one Redis, Sentinel and a Cluster. Every key a
script touches is of one queue: its lists and sets, its jobs' hashes (job ids
name their queue), its failed store, unique and concurrency keys and reaper
lock. A worker serving queues of several slots makes one script call per slot
(``slot_groups``; on one Redis all its queues are one group: one call, as
before). The worker registry (``workers`` / ``worker``) is written by plain
commands beside the scripts (REGISTER, scripts.py, alone scores the ZSET with the
server's time). Not per queue, so not for scripts: ``{p}:paused``, ``{p}:restart``
(plain commands), schedules (refused on a cluster); a chain's or batch's hash is
in the slot of the queue its id names (flows_lua.py: all its queues must share it). On a
cluster a script call declares ``stats`` (it routes the call) and ``fence``, a key
that never exists: while the slot migrates Redis answers TRYAGAIN, so no script
runs half on a slot split over two nodes (``script_keys``).

Per queue ``Q``:

- ``{p}:{Q}:waiting``   LIST of job ids of priority 5 (the default). Producers
  LPUSH; workers take from the right (FIFO); a job handed back on drain is
  RPUSHed so it runs next.
- ``{p}:{Q}:waiting:p{N}`` the same LIST for priority N (1..10 except 5; 10 runs
  first). One list per level, not one ZSET scored by (priority, sequence): a
  take stays RPOP with a count (O(1) a job, where ZPOPMIN is O(log n) and a
  ZSET costs several times the memory); the default level keeps the old key,
  so jobs already queued and foreign readers (a KEDA list scaler's LLEN) are
  unaffected; a hand-back to the head of a level stays an RPUSH; and the
  operator reads depth per level with one LLEN each in its one pipeline. The
  cost: a FETCH tries up to 10 RPOPs per queue (inside Lua, no round trip).
- ``{p}:{Q}:delayed``   ZSET job id -> due time (epoch seconds, float).
  Delayed jobs and retries waiting out their backoff.
- ``{p}:{Q}:inflight``  ZSET job id -> lease expiry (epoch seconds, float).
  A job is here while a worker runs it; an expired lease means its worker is
  gone and the job is put back in ``waiting`` with its delivery count + 1.
- ``{p}:{Q}:stats``     HASH of monotonically increasing counters:
  ``enqueued``, ``completed``, ``failed``, ``retried``. Readers derive arrival
  and completion rates from deltas between two reads. ``junk``: entries a worker
  found in the queue's keys that were no runnable job (no job hash, not an id)
  and filed in the failed store (counted in ``failed`` too).

Per job: ``{p}:{Q}:job:{id}`` HASH with at least ``queue``, ``payload`` (JSON
text), ``enqueued_at`` (epoch seconds), ``deliveries``, ``tries``, ``state``.

Job ids start with the enqueue time in milliseconds, zero-padded to 13 digits,
and end in ``@`` + their queue's name (``1732400000000-<16 hex>@emails``): the
age of the oldest waiting job is ``now - int(LINDEX waiting -1 [:13]) / 1000``
with no second round trip, and the job's hash, found from the id alone (the
HTTP API's ``/jobs/{id}``, ``producer.job(id)``), is in its queue's hash slot,
so a script moving a job touches one slot (Redis Cluster). Bytes of the name
outside ``[A-Za-z0-9_.:-]`` are written ``~xx`` (``id_suffix``): the id stays
printable ASCII and URL-safe. An id of the old form (no ``@queue``: enqueued
before ids carried it) keeps its old key ``{p}:job:{id}`` (``legacy_job``), on
one Redis or behind Sentinel, so an upgrade loses no queued job; the scripts
build the same names (PRELUDE's ``jkey``, prelude_lua.py).

Workers: ``{p}:workers`` ZSET worker id -> last heartbeat (epoch seconds) and
``{p}:worker:{id}`` STRING (JSON, with a TTL of a few heartbeat intervals):
``{"id", "pod", "host", "pid", "queues", "state": "idle"|"busy"|"draining",
"in_flight": [{"id", "queue", "started_at"}], "processed", "failed",
"started_at", "beat_at"}``. The operator reads them to remove idle pods first;
workers read them to recover the jobs of dead workers.

Added by the runtime (the operator does not need to read these):

- ``{p}:{Q}:notify``    LIST of wake-up tokens (capped): producers push one per
  job so idle workers blocked in BLPOP wake at once instead of polling.
- ``{p}:{Q}:rate:{w}``  STRING counter of jobs started in rate-limit window
  ``w`` (fixed windows; expires after the window).
- ``{p}:{Q}:failed``    ZSET job id -> failed at (epoch seconds): the queue's
  failed-jobs store. The job hash (with ``error`` and ``traceback``) is kept,
  without a TTL, for as long as the id is in this set; trimmed by age and count.
  ``{p}:failed`` (``legacy_failed``) is the old layout's one store: still listed,
  retried and trimmed on one Redis.
- ``{p}:{Q}:unique:{key}`` STRING job id, with a TTL: a unique job of the queue is
  queued or running. Deleted when that job finishes (done or failed). Per queue:
  the same key on two queues is two keys (it was one before the Cluster layout).
- ``{p}:{Q}:conc:{key}`` ZSET job id -> lease expiry: the queue's jobs running under
  a concurrency key, shared by all workers (expired entries do not count); per
  queue, as unique keys.
- ``{p}:{Q}:reaper``    STRING lock (SET NX PX): the worker holding it reaps the
  queue this interval.
- ``{p}:{Q}:job:{id}:done`` LIST holding one token once the job is done or failed
  for good, with the result's TTL; pushed only for a job someone waits on
  (its hash has ``waited``). Waiters block on it (results.py).
- ``{p}:{Q}:job:{id}:progress`` pub/sub channel: progress updates and the final
  state of a waited job (results.py, progress.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from redis.crc import key_slot

DEFAULT_PREFIX = "qw"
ID_TIME_DIGITS = 13
# A job id ends in "@" + its queue's name, the bytes outside ID_SAFE escaped as "~xx"
# (lower-case hex): URL-safe, printable ASCII, and readable for the usual names.
ID_QUEUE_SEP = "@"
ID_SAFE = frozenset(string.ascii_letters + string.digits + "_.:-")
MAX_ID_BYTES = 200  # scripts.py usable_id
_ID_QUEUE = re.compile(r"@([A-Za-z0-9_.:~-]+)\Z")
_ESCAPED = re.compile(r"~([0-9a-fA-F]{2})")

DEFAULT_PRIORITY = 5
MIN_PRIORITY = 1
MAX_PRIORITY = 10
# The order a FETCH takes a queue's levels in: highest first.
PRIORITIES = tuple(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))


def check_priority(priority: object) -> int:
    """``priority`` if it is a whole number from 1 to 10; ValueError naming it otherwise."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not (
            MIN_PRIORITY <= priority <= MAX_PRIORITY):
        raise ValueError(f"bad priority {priority!r}: use a whole number from {MIN_PRIORITY} "
                         f"(lowest) to {MAX_PRIORITY} (highest); the default is "
                         f"{DEFAULT_PRIORITY}")
    return priority


def priority_level(text: str | bytes | int | None) -> int:
    """The level a stored ``priority`` field means (as the Lua ``level`` reads it):
    missing or not a number -> the default, out of range -> clamped to 1..10."""
    if not text:
        return DEFAULT_PRIORITY
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_PRIORITY
    if value != value:  # NaN
        return DEFAULT_PRIORITY
    return int(min(MAX_PRIORITY, max(MIN_PRIORITY, value)))


def waiting(queue: str, prefix: str = DEFAULT_PREFIX, priority: int = DEFAULT_PRIORITY) -> str:
    """The waiting list of one priority level (the default level keeps the plain name)."""
    if priority == DEFAULT_PRIORITY:
        return f"{prefix}:{{{queue}}}:waiting"
    return f"{prefix}:{{{queue}}}:waiting:p{priority}"


def waiting_levels(queue: str, prefix: str = DEFAULT_PREFIX) -> list[tuple[int, str]]:
    """(priority, waiting list) of every level, highest first (the order a FETCH takes)."""
    return [(p, waiting(queue, prefix, p)) for p in PRIORITIES]


def delayed(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:delayed"


def inflight(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:inflight"


def stats(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:stats"


def id_suffix(queue: str) -> str:
    """What a job id of ``queue`` ends in: ``@`` + the name, escaped (``ID_SAFE``)."""
    return ID_QUEUE_SEP + "".join(
        c if c in ID_SAFE else "".join(f"~{b:02x}" for b in c.encode()) for c in queue)


def queue_of_id(job_id: str | bytes) -> str | None:
    """The queue a job id names (``...@emails`` -> ``emails``); None for an id of the
    old form (no queue: its hash is ``legacy_job``)."""
    text = job_id.decode(errors="replace") if isinstance(job_id, bytes) else job_id
    m = _ID_QUEUE.search(text)
    if m is None:
        return None
    enc = m.group(1)
    if "~" not in enc:
        return enc
    return _ESCAPED.sub(lambda e: chr(int(e.group(1), 16)), enc).encode("latin-1").decode(
        errors="replace")


def job(job_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The job's hash: in its queue's slot when the id names the queue, else the old key."""
    queue = queue_of_id(job_id)
    if queue is None:
        return legacy_job(job_id, prefix)
    return f"{prefix}:{{{queue}}}:job:{job_id}"


def legacy_job(job_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The hash of a job whose id has no queue (enqueued before ids carried it)."""
    return f"{prefix}:job:{job_id}"


def workers(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:workers"


def worker(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:worker:{worker_id}"


def enqueued_at_from_id(job_id: str | bytes) -> float | None:
    """Enqueue time (epoch seconds) encoded at the start of a job id, if any."""
    text = job_id.decode() if isinstance(job_id, bytes) else job_id
    head = text[:ID_TIME_DIGITS]
    if len(head) == ID_TIME_DIGITS and head.isdigit():
        return int(head) / 1000.0
    return None


def notify(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:notify"


def rate(queue: str, window: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:rate:{window}"


def failed(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The queue's failed store (one per queue: in its hash slot)."""
    return f"{prefix}:{{{queue}}}:failed"


def legacy_failed(prefix: str = DEFAULT_PREFIX) -> str:
    """The one failed store of the old layout: still listed, retried and trimmed."""
    return f"{prefix}:failed"


def unique(queue: str, key: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:unique:{key}"


def concurrency(queue: str, key: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:conc:{key}"


def reaper_lock(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:{{{queue}}}:reaper"


def done(job_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{job(job_id, prefix)}:done"


def progress_channel(job_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{job(job_id, prefix)}:progress"


def fence(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A key of the queue's slot that never exists. Declared beside ``stats`` as a script's
    KEYS on a cluster (``script_keys``): while the slot migrates, a command naming a key
    that exists and one that does not is refused with TRYAGAIN (on the source and on the
    target alike), so no script runs half on a slot whose keys are on two nodes."""
    return f"{prefix}:{{{queue}}}:fence"


def script_keys(queue: str, cluster: bool, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The KEYS of a script call about ``queue``: on a cluster ``stats`` (it routes the
    call; its presence tells the script that other slots are out of reach) and ``fence``;
    on one Redis none."""
    return [stats(queue, prefix), fence(queue, prefix)] if cluster else []


def slot(queue: str, prefix: str = DEFAULT_PREFIX) -> int:
    """The Redis Cluster hash slot of every key of ``queue``."""
    return key_slot(stats(queue, prefix).encode())


def slot_groups(queues: Iterable[str], cluster: bool, prefix: str = DEFAULT_PREFIX
                ) -> list[list[str]]:
    """``queues`` split into the groups one script call may touch, in their order: on a
    Redis Cluster one group per hash slot; on one Redis (or behind Sentinel) one group."""
    queues = list(queues)
    if not cluster:
        return [queues] if queues else []
    groups: dict[int, list[str]] = {}
    for q in queues:
        groups.setdefault(slot(q, prefix), []).append(q)
    return list(groups.values())
