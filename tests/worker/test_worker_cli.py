"""`queueworker enqueue`, `job` and `failed ...` against a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis

from queueworker.cli import main as qw
from queueworker.worker import keys
from queueworker.worker.producer import Producer


@pytest.fixture
def url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("QUEUEWORKER_REDIS_URL", redis_url)
    return redis_url


def _fail(url: str, queue: str, n: int) -> list[str]:
    """Put n jobs of `queue` straight into the failed store."""
    r = redis.Redis.from_url(url, decode_responses=True)
    ids = Producer(r).enqueue_many(queue, [{"n": i} for i in range(n)])
    for i in ids:
        r.lrem(keys.waiting(queue), 0, i)
        r.hset(keys.job(i), mapping={"state": "failed", "error": "ValueError: bad\nmore",
                                     "traceback": "Traceback (most recent call last): ...",
                                     "tries": "3", "failed_at": "1700000000"})
        r.zadd(keys.failed(queue), {i: 1700000000})
    return ids


def _failed_total(r: redis.Redis) -> int:
    """Failed jobs of both queues (one failed store per queue: keys.failed)."""
    return sum(int(r.zcard(keys.failed(q))) for q in ("emails", "sms"))


def test_enqueue_and_job(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qw(["enqueue", "emails", '{"to": "a@b"}', "--max-tries", "5",
               "--backoff", "10,30,60", "--timeout", "30"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert qw(["job", job_id]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["queue"], info["payload"], info["state"], info["max_tries"], info["backoff"],
            info["timeout"]) == ("emails", {"to": "a@b"}, "waiting", 5, "10,30,60", "30")
    assert qw(["job", "0000000000000-missing"]) == 1
    assert "no job" in capsys.readouterr().err


def test_enqueue_bulk_unique_and_bad_input(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qw(["enqueue", "q", "1", "--count", "3"]) == 0
    assert len(capsys.readouterr().out.split()) == 3
    assert qw(["enqueue", "q", "{}", "--unique-key", "k"]) == 0
    first = capsys.readouterr().out.strip()
    assert qw(["enqueue", "q", "{}", "--unique-key", "k"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == first
    assert "already queued" in out.err
    assert qw(["enqueue", "q", "not json"]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert qw(["enqueue", "q", '"xxxxxxxxxx"', "--max-payload-bytes", "8"]) == 2
    assert "over the limit of 8 bytes" in capsys.readouterr().err


def test_failed_list_show_forget(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _fail(url, "emails", 2)
    assert qw(["failed", "list"]) == 0
    out = capsys.readouterr().out
    assert a in out
    assert b in out
    assert "ValueError: bad" in out
    assert "more" not in out
    assert qw(["failed", "show", a]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["traceback"].startswith("Traceback")
    assert info["tries"] == 3
    assert qw(["failed", "forget", a]) == 0
    assert qw(["failed", "show", a]) == 1
    assert qw(["failed", "forget", a]) == 1
    assert qw(["failed", "list", "--json"]) == 0
    capsys.readouterr()


def test_failed_retry_one_all_and_by_queue(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    [e1, e2] = _fail(url, "emails", 2)
    [s1] = _fail(url, "sms", 1)
    assert qw(["failed", "retry", e1]) == 0
    assert r.lrange(keys.waiting("emails"), 0, -1) == [e1]
    assert r.hgetall(keys.job(e1))["tries"] == "0"
    assert "error" not in r.hgetall(keys.job(e1))
    assert qw(["failed", "retry", "--queue", "sms"]) == 0
    assert r.lrange(keys.waiting("sms"), 0, -1) == [s1]
    assert r.zrange(keys.failed("emails"), 0, -1) == [e2]
    assert qw(["failed", "retry", "--all"]) == 0
    assert _failed_total(r) == 0
    assert qw(["failed", "retry"]) == 2
    capsys.readouterr()


def test_failed_flush(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    ids = _fail(url, "emails", 3) + _fail(url, "sms", 2)
    assert qw(["failed", "flush", "--queue", "sms"]) == 0
    assert (r.zcard(keys.failed("emails")), r.zcard(keys.failed("sms"))) == (3, 0)
    assert qw(["failed", "flush"]) == 0
    assert "flushed 3" in capsys.readouterr().out
    assert _failed_total(r) == 0
    assert r.exists(*(keys.job(i) for i in ids)) == 0
