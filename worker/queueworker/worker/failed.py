"""The failed-jobs store: list, show, retry, forget, flush (like Laravel's queue:failed).

A failed job keeps its hash (``keys.job``: payload, ``error``, ``traceback``,
``tries``, ``failed_at``, ...) and its id is in the ``keys.failed`` ZSET
(score = failed at). The reaper trims the store by age and count
(``Settings.failed_max_age`` / ``failed_max_count``). Retrying puts the job
back at the tail of its queue with ``tries``, ``lost`` and ``exceptions``
reset (and its done token gone: a waiter waits for the new run). Errors and
tracebacks sealed with the payload (crypto.py) are opened with the process's
keyring for ``list`` and ``show``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from queueworker.worker import crypto, keys
from queueworker.worker.broker import PRELUDE
from queueworker.worker.job import Job

# ARGV: prefix, id, ...  -> RETRY: number of jobs put back; RETRY_IDS: their ids
_RETRY_BODY = """
local put = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', P .. ':failed', id) == 1 then
    local jk = jkey(id)
    local q = redis.call('HGET', jk, 'queue')
    if q then
      redis.call('HSET', jk, 'state', 'waiting', 'tries', '0', 'lost', '0', 'exceptions', '0')
      redis.call('HDEL', jk, 'error', 'traceback', 'failed_at', 'worker')
      redis.call('DEL', jk .. ':done')
      redis.call('LPUSH', wkey_of(q, id), id)
      redis.call('LPUSH', qkey(q, 'notify'), '1')
      redis.call('LTRIM', qkey(q, 'notify'), 0, 15)
      put[#put + 1] = id
    end
  end
end
"""
RETRY = PRELUDE + _RETRY_BODY + "return #put\n"
RETRY_IDS = PRELUDE + _RETRY_BODY + "return put\n"


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class FailedStore:
    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX,
                 keyring: crypto.Keyring | None = None) -> None:
        self.redis = client
        self.prefix = prefix
        self.key = keys.failed(prefix)
        self.keyring = keyring if keyring is not None else crypto.process_keyring()
        self._retry = client.register_script(RETRY_IDS)

    def ids(self, queue: str | None = None) -> list[str]:
        """Failed job ids, newest first (filtered by queue if given)."""
        ids = [_text(x) for x in self.redis.zrevrange(self.key, 0, -1)]
        if queue is None:
            return ids
        with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(keys.job(i, self.prefix), "queue")
            queues = pipe.execute()
        return [i for i, q in zip(ids, queues, strict=True) if q is not None and _text(q) == queue]

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

    def show(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(keys.job(job_id, self.prefix))
        if not raw or self.redis.zscore(self.key, job_id) is None:
            return None
        return Job.from_hash(job_id, {_text(k): _text(v) for k, v in raw.items()}).info(
            self.keyring)

    def retry(self, ids: Iterable[str]) -> int:
        """Put failed jobs back on their queue; how many were."""
        return len(self.retry_ids(ids))

    def retry_ids(self, ids: Iterable[str]) -> list[str]:
        """Put failed jobs back on their queue; the ids that were (an id not in the failed
        store is left out)."""
        ids = list(ids)
        put: list[str] = []
        for start in range(0, len(ids), 500):
            put += [_text(x) for x in self._retry(args=[self.prefix, *ids[start:start + 500]])]
        return put

    def retry_all(self, queue: str | None = None) -> int:
        return self.retry(self.ids(queue))

    def forget(self, job_id: str) -> bool:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key, job_id)
            pipe.delete(keys.job(job_id, self.prefix))
            removed, _ = pipe.execute()
        return bool(removed)

    def flush(self, queue: str | None = None) -> int:
        ids = self.ids(queue)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.key, *chunk)
                pipe.delete(*(keys.job(i, self.prefix) for i in chunk))
                pipe.execute()
        return len(ids)
