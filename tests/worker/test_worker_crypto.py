"""Encryption at rest (crypto.py): payloads, results, errors sealed; rotation; clear errors."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import crypto, keys
from queueworker.worker.crypto import CryptoError, Keyring
from queueworker.worker.producer import Producer
from queueworker.worker.results import JobFailedError
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


OLD, NEW = f"old:{_key()}", f"new:{_key()}"


@pytest.fixture
def worker_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker process's ring: the new key first (seals), the old one still opens."""
    monkeypatch.setenv(crypto.ENV_KEYS, f"{NEW},{OLD}")
    crypto.process_keyring.cache_clear()
    yield
    crypto.process_keyring.cache_clear()


async def _finished(producer: Producer, *ids: str) -> bool:
    return all((o := producer.outcome(i)) is not None and o.finished for i in ids)


async def test_sealed_payloads_results_and_errors_with_rotation(
        redis_url: str, worker_keys: None, r: aioredis.Redis) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    old_producer = Producer(client, keyring=Keyring.parse(OLD, queues="audio"))
    ring = Keyring.parse(f"{NEW},{OLD}")

    def h(payload: Any) -> Any:
        if payload["secret"] == "bad":
            raise ValueError(f"cannot read {payload['secret']}-file")
        return {"echo": payload["secret"]}

    ok = old_producer.enqueue("audio", {"secret": "s3cr3t"})
    bad = old_producer.enqueue("audio", {"secret": "bad"}, max_tries=1)
    plain = old_producer.enqueue("other", {"secret": "open"})  # not a sealed queue
    raw = await r.hget(keys.job(ok), "payload")
    assert raw is not None
    assert raw.startswith("enc:1:old:")
    assert "s3cr3t" not in raw
    assert await r.hget(keys.job(plain), "payload") == '{"secret":"open"}'
    w = Worker(fast_settings(redis_url, queues=["audio", "other"]), table(h))
    await run_until(w, lambda: _finished(old_producer, ok, bad, plain))

    stored = await r.hgetall(keys.job(ok))
    assert stored["result"].startswith("enc:1:new:")  # sealed with the current key
    failed = await r.hgetall(keys.job(bad))
    assert failed["error"].startswith("enc:1:new:")
    assert "bad-file" not in failed["error"] + failed["traceback"]
    reader = Producer(client, keyring=ring)
    assert reader.result(ok) == {"echo": "s3cr3t"}
    with pytest.raises(JobFailedError, match="ValueError: cannot read bad-file"):
        reader.result(bad)
    assert reader.result(plain) == {"echo": "open"}
    info = reader.job(ok)
    assert info is not None
    assert (info["payload"], info["result"]) == ({"secret": "s3cr3t"}, {"echo": "s3cr3t"})
    # Without the keys: never the plain text, a clear line instead.
    blind = Producer(client, keyring=None)
    shown = blind.job(ok)
    assert shown is not None
    assert shown["payload"] == "(encrypted)"
    with pytest.raises(CryptoError, match=r"is encrypted .* set QUEUEWORKER_KEYS"):
        blind.result(ok)


async def test_a_payload_sealed_with_an_unknown_key_fails_without_retry(
        redis_url: str, worker_keys: None) -> None:
    stranger = Producer(redis.Redis.from_url(redis_url, decode_responses=True),
                        keyring=Keyring.parse(f"gone:{_key()}"))
    job_id = stranger.enqueue("default", {"x": 1}, max_tries=5)
    w = Worker(fast_settings(redis_url), table(lambda p: p))
    await run_until(w, lambda: _finished(stranger, job_id))
    outcome = Producer(stranger.redis, keyring=None).outcome(job_id)
    assert outcome is not None
    assert outcome.state == "failed"
    assert outcome.tries == 1
    assert "sealed with key 'gone', which is not in the ring (new, old)" in outcome.error


def test_keyring_parsing_names_what_is_wrong(tmp_path: Path) -> None:
    ring = Keyring.parse(f"{NEW}\n{OLD}\n", queues="a, b")
    assert (ring.primary, sorted(ring.keys), ring.queues) == ("new", ["new", "old"], ("a", "b"))
    assert ring.seals("a")
    assert not ring.seals("c")
    by_handler = Keyring.parse(NEW, queues="handler:separate")
    assert by_handler.seals("any", "separate")
    assert not by_handler.seals("any", "other")
    assert not by_handler.seals("any")
    sealed = ring.seal("hello", "job-1", "payload")
    assert ring.open(sealed, "job-1", "payload") == "hello"
    with pytest.raises(CryptoError, match="does not open"):
        ring.open(sealed, "job-2", "payload")  # moved to another job
    for text, why in (("k1", "use ID:BASE64KEY"), ("k1:!!!", "not base64"),
                      ("k1:" + base64.b64encode(b"short").decode(), "5 bytes"),
                      (f"{OLD},{OLD}", "listed twice"), ("", "no keys")):
        with pytest.raises(CryptoError, match=why):
            Keyring.parse(text)
    path = tmp_path / "keys"
    path.write_text(NEW)
    from_file = Keyring.from_env({crypto.ENV_KEYS_FILE: str(path)})
    assert from_file is not None
    assert from_file.primary == "new"
    assert Keyring.from_env({}) is None
    with pytest.raises(CryptoError, match="QUEUEWORKER_KEYS: bad key entry #1"):
        Keyring.from_env({crypto.ENV_KEYS: "bad"})
    with pytest.raises(CryptoError, match="cannot read QUEUEWORKER_KEYS_FILE"):
        Keyring.from_env({crypto.ENV_KEYS_FILE: str(tmp_path / "missing")})
