"""The failed-jobs store: list, show, retry, forget, flush (like Laravel's queue:failed).

A failed job keeps its hash (``keys.job``: payload, ``error``, ``traceback``,
``tries``, ``failed_at``, ...) and its id is in its queue's ``keys.failed`` ZSET
(score = failed at; one store per queue, so a failure is filed in the script that
fails the job, in the queue's hash slot). Listing every queue's failed jobs finds
the queues by their stats hashes (``queues.discover``), and reads the old layout's
one store (``keys.legacy_failed``) too. The reaper trims the store by age and count
(``Settings.failed_max_age`` / ``failed_max_count``). Retrying puts the job
back at the tail of its queue with ``tries``, ``lost`` and ``exceptions``
reset (and its done token gone: a waiter waits for the new run). Errors and
tracebacks sealed with the payload (crypto.py) are opened with the process's
keyring for ``list`` and ``show``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.crc import key_slot

from queueworker.worker import crypto, keys
from queueworker.worker.broker import PRELUDE
from queueworker.worker.connection import is_cluster
from queueworker.worker.job import Job
from queueworker.worker.queues import discover

# ARGV: prefix, id, ...  -> RETRY: number of jobs put back; RETRY_IDS: their ids.
# An id leaves its queue's store (keys.failed) or, on one Redis, the old layout's one
# (keys.legacy_failed). On a cluster every id of a call is of one slot (FailedStore).
_RETRY_BODY = """
local put = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local jk = jkey(id)
  local h = jget(id, 'queue')
  local q = (CLUSTER and id_queue(id)) or (h and h[1]) or id_queue(id)
  local removed = q and redis.call('ZREM', qkey(q, 'failed'), id) == 1
  if not removed and not CLUSTER then removed = redis.call('ZREM', P .. ':failed', id) == 1 end
  if removed and h and h[1] then
    q = h[1]
    redis.call('HSET', jk, 'state', 'waiting', 'tries', '0', 'lost', '0', 'exceptions', '0')
    redis.call('HDEL', jk, 'error', 'traceback', 'failed_at', 'worker')
    redis.call('DEL', jk .. ':done')
    redis.call('LPUSH', wkey_of(q, id), id)
    redis.call('LPUSH', qkey(q, 'notify'), '1')
    redis.call('LTRIM', qkey(q, 'notify'), 0, 15)
    put[#put + 1] = id
  end
end
"""
RETRY = PRELUDE + _RETRY_BODY + "return #put\n"
RETRY_IDS = PRELUDE + _RETRY_BODY + "return put\n"


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def stores(queues: Iterable[str], prefix: str, cluster: bool) -> list[str]:
    """The failed-store ZSETs of these queues, and the old layout's one store (not on a
    cluster, where it cannot be: the cluster was refused before the stores were split)."""
    out = [keys.failed(q, prefix) for q in queues]
    return out if cluster else [*out, keys.legacy_failed(prefix)]


def by_slot(ids: Iterable[str], prefix: str) -> list[list[str]]:
    """Ids grouped by the hash slot of their job hash (one script call each on a cluster)."""
    groups: dict[int, list[str]] = {}
    for i in ids:
        groups.setdefault(key_slot(keys.job(i, prefix).encode()), []).append(i)
    return list(groups.values())


class FailedStore:
    """The failed jobs of every queue (``keys.failed`` per queue, found by ``queues.discover``,
    and the old layout's one store), newest first."""

    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX,
                 keyring: crypto.Keyring | None = None) -> None:
        self.redis = client
        self.prefix = prefix
        self.cluster = is_cluster(client)
        self.keyring = keyring if keyring is not None else crypto.process_keyring()
        self._retry = client.register_script(RETRY_IDS)

    def _entries(self, queue: str | None) -> list[tuple[str, float, str]]:
        """(id, failed at, its store) newest first; an entry of the old store is kept for
        ``queue`` when its hash names that queue."""
        names = [queue] if queue is not None else discover(self.redis, self.prefix)
        out: list[tuple[str, float, str]] = []
        for key in stores(names, self.prefix, self.cluster):
            rows = [(_text(i), float(at), key)
                    for i, at in self.redis.zrevrange(key, 0, -1, withscores=True)]
            if queue is not None and key == keys.legacy_failed(self.prefix) and rows:
                with self.redis.pipeline(transaction=False) as pipe:
                    for i, _, _ in rows:
                        pipe.hget(keys.job(i, self.prefix), "queue")
                    qs = pipe.execute()
                rows = [r for r, q in zip(rows, qs, strict=True) if q is not None
                        and _text(q) == queue]
            out += rows
        out.sort(key=lambda r: -r[1])
        return out

    def ids(self, queue: str | None = None) -> list[str]:
        """Failed job ids, newest first (of one queue if given)."""
        return [i for i, _, _ in self._entries(queue)]

    def list(self, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Summaries (id, queue, failed_at, tries, error) of up to ``limit`` failed jobs."""
        ids = self.ids(queue)[:limit] if limit else self.ids(queue)
        with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hmget(keys.job(i, self.prefix), "queue", "failed_at", "tries", "error")
            rows = pipe.execute()
        out = []
        for i, row in zip(ids, rows, strict=True):
            q, at, tries, err = (None if v is None else _text(v) for v in row)
            if err and crypto.is_sealed(err):
                try:
                    err = crypto.open_field(err, i, "error", self.keyring)
                except crypto.CryptoError:
                    err = "(encrypted)"
            out.append({"id": i, "queue": q, "failed_at": float(at) if at else None,
                        "tries": int(tries) if tries else 0,
                        "error": (err or "").splitlines()[0] if err else ""})
        return out

    def _store_of(self, job_id: str, queue: str | None) -> str | None:
        """The store holding ``job_id`` (its queue's, or the old one), or None."""
        names = [n for n in (queue, keys.queue_of_id(job_id)) if n]
        for key in stores(dict.fromkeys(names), self.prefix, self.cluster):
            if self.redis.zscore(key, job_id) is not None:
                return key
        return None

    def show(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(keys.job(job_id, self.prefix))
        h = {_text(k): _text(v) for k, v in raw.items()}
        if not h or self._store_of(job_id, h.get("queue")) is None:
            return None
        return Job.from_hash(job_id, h).info(self.keyring)

    def retry(self, ids: Iterable[str]) -> int:
        """Put failed jobs back on their queue; how many were."""
        return len(self.retry_ids(ids))

    def retry_ids(self, ids: Iterable[str]) -> list[str]:
        """Put failed jobs back on their queue; the ids that were (an id not in the failed
        store is left out)."""
        put: list[str] = []
        for group in by_slot(ids, self.prefix) if self.cluster else [list(ids)]:
            route = keys.script_keys(keys.queue_of_id(group[0]) or "", self.cluster, self.prefix)
            for start in range(0, len(group), 500):
                put += [_text(x) for x in self._retry(
                    keys=route, args=[self.prefix, *group[start:start + 500]])]
        return put

    def retry_all(self, queue: str | None = None) -> int:
        return self.retry(self.ids(queue))

    def forget(self, job_id: str) -> bool:
        h = self.redis.hget(keys.job(job_id, self.prefix), "queue")
        key = self._store_of(job_id, None if h is None else _text(h))
        if key is None:
            return False
        self._drop([(job_id, key)])
        return True

    def _drop(self, entries: Sequence[tuple[str, str]]) -> None:
        """Remove (id, store) entries and their hashes (on one Redis in one transaction)."""
        with self.redis.pipeline(transaction=not self.cluster) as pipe:
            for job_id, key in entries:
                pipe.zrem(key, job_id)
                pipe.delete(keys.job(job_id, self.prefix))
            pipe.execute()

    def flush(self, queue: str | None = None) -> int:
        entries = [(i, key) for i, _, key in self._entries(queue)]
        for start in range(0, len(entries), 500):
            self._drop(entries[start:start + 500])
        return len(entries)
