"""Nothing vanishes: every kind of junk pushed by hand into a queue's keys ends done or in
the failed store with its reason, counted (scripts.py ``junk``, fetcher.py)."""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.failed import FailedStore
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table

Q = "default"


def push_junk(raw: redis.Redis) -> dict[str, str]:
    """Every kind of entry a foreign writer could leave; -> entry label: expected reason."""
    w = keys.waiting(Q)
    expect: dict[str, str] = {}

    def waiting(label: str, entry: bytes | str, reason: str, key: str = w) -> None:
        raw.lpush(key, entry)
        expect[label] = reason

    waiting("raw JSON with spaces", '{"to": "a@example.com"}', "bad_entry")
    waiting("raw JSON, no spaces", '{"to":"a@example.com"}', "no_job_hash")
    waiting("junk string", "hello-junk", "no_job_hash")
    waiting("binary", b"\xff\xfe\x00bin", "bad_entry")
    waiting("empty", "", "bad_entry")
    waiting("too long", "x" * 300, "bad_entry")
    raw.set(keys.job("a-string-key"), "not a hash")
    waiting("job key not a hash", "a-string-key", "bad_entry")
    waiting("junk at priority 8", "p8-junk", "no_job_hash", keys.waiting(Q, priority=8))
    raw.hset(keys.job("no-json"), mapping={"queue": Q, "payload": "{nope"})
    waiting("payload not JSON", "no-json", "bad_payload")
    raw.hset(keys.job("not-utf8"), mapping={"queue": Q, "payload": b'"caf\xe9"'})
    waiting("payload not UTF-8", "not-utf8", "undecodable")
    raw.hset(keys.job("who-runs-me"), mapping={"queue": Q, "payload": "1",
                                               "handler": "nobody"})
    waiting("unknown handler", "who-runs-me", "unknown_handler")
    raw.hset(keys.job("no-queue-field"), mapping={"payload": '"ok"'})
    waiting("hash without its queue", "no-queue-field", "done")
    raw.zadd(keys.delayed(Q), {"delayed-junk": 0, b"\xc3(": 0})
    expect["delayed junk id"] = "no_job_hash"
    expect["delayed binary id"] = "bad_entry"
    raw.zadd(keys.inflight(Q), {"inflight-junk": time.time() - 10})
    expect["in-flight junk (lease long gone)"] = "no_job_hash"
    return expect


async def test_every_junk_entry_is_accounted_for(redis_url: str, r: aioredis.Redis) -> None:
    raw = redis.Redis.from_url(redis_url)
    producer = Producer(raw)
    good = producer.enqueue_many(Q, [{"n": 1}, {"n": 2}])
    expect = push_junk(raw)
    expect.update({f"good {i}": "done" for i in good})
    n_failed = sum(1 for v in expect.values() if v != "done")
    n_done = len(expect) - n_failed
    ran: list[Any] = []

    async def handler(payload: Any) -> None:
        ran.append(payload)

    w = Worker(fast_settings(redis_url), table(handler))

    async def all_settled() -> bool:
        return (await r.zcard(keys.failed(Q)) == n_failed and w.processed == n_done
                and not w.running and not w.buffer)

    assert await run_until(w, all_settled) == 0
    # Nothing left anywhere in the queue's keys.
    for _, k in keys.waiting_levels(Q):
        assert await r.llen(k) == 0, k
    assert await r.zcard(keys.delayed(Q)) == 0
    assert await r.zcard(keys.inflight(Q)) == 0
    assert sorted(map(str, ran)) == sorted(["{'n': 1}", "{'n': 2}", "ok"])
    # Every failed record names its reason, keeps what the entry was, and is counted.
    reasons: dict[str, int] = {}
    for fid in raw.zrange(keys.failed(Q), 0, -1):
        h = {k.decode(): v.decode(errors="replace")
             for k, v in raw.hgetall(keys.job(fid.decode())).items()}
        assert h["state"] == "failed"
        assert h["queue"] == Q
        assert h["error"], h
        reason = h.get("reason") or _reason_from(h["error"])
        reasons[reason] = reasons.get(reason, 0) + 1
    want: dict[str, int] = {}
    for v in expect.values():
        if v != "done":
            want[v] = want.get(v, 0) + 1
    assert reasons == want
    # The undecodable one is readable by every client now: its bad bytes are escaped.
    shown = FailedStore(redis.Redis.from_url(redis_url, decode_responses=True)).show("not-utf8")
    assert shown is not None
    assert shown["payload"] == '"caf\\xe9"'
    assert shown["error"].startswith("Undecodable: job hash field(s) payload not UTF-8")
    assert int(await r.hget(keys.stats(Q), "junk") or 0) == sum(
        n for k, n in want.items() if k in ("no_job_hash", "bad_entry"))
    text = w.metrics.render().decode()
    fetched_junk = want["bad_entry"] + want["no_job_hash"] - 1  # one was the reaper's
    counted = sum(_metric(text, reason) for reason in ("bad_entry", "no_job_hash"))
    assert counted == fetched_junk
    assert _metric(text, "undecodable") == 1
    assert _metric(text, "unknown_handler") == 1
    assert _metric(text, "bad_payload") == 1


def _reason_from(error: str) -> str:
    """The worker's own failures carry their reason in the error's first word."""
    head = error.split(":", 1)[0]
    return {"BadPayloadError": "bad_payload", "UnknownHandlerError": "unknown_handler",
            "Undecodable": "undecodable"}.get(head, head)


def _metric(text: str, reason: str) -> int:
    line = f'queueworker_worker_jobs_failed_total{{queue="{Q}",reason="{reason}"}} '
    for row in text.splitlines():
        if row.startswith(line):
            return int(float(row[len(line):]))
    return 0


async def test_a_raw_json_entry_can_be_retried_as_a_job(redis_url: str,
                                                         r: aioredis.Redis) -> None:
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.lpush(keys.waiting(Q), '{"to":"a@example.com"}')
    w = Worker(fast_settings(redis_url), table(lambda payload: None))
    assert await run_until(w, lambda: _count(r, 1)) == 0
    [fid] = raw.zrange(keys.failed(Q), 0, -1)
    assert raw.hget(keys.job(fid), "payload") == '{"to":"a@example.com"}'
    assert "NoJobHash" in (raw.hget(keys.job(fid), "error") or "")


async def _count(r: aioredis.Redis, n: int) -> bool:
    return bool(await r.zcard(keys.failed(Q)) == n)
