"""Which hash slots the native layout's Lua scripts touch (Redis Cluster readiness).

A worker runs jobs of every kind (plain, delayed, unique, with a concurrency
key, rate limited, failing) over two queues on one redis-server while MONITOR
records what each script did. A script may run on Redis Cluster only if every
key it touches is in one hash slot. Held here:

- every key of a queue carries the queue's ``{queue}`` hash tag (one slot per queue),
  job hashes included (job ids name their queue: keys.job);
- no script touches a key outside a queue's slot (``UNTAGGED`` is empty), but for the
  worker registry's score, which REGISTER writes alone (``SINGLE``: one key, one slot);
- every script call touches one slot: what lets worker/connection.py open
  ``redis+cluster://`` (a worker serving queues of several slots makes one call per slot).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
import threading
from collections import defaultdict
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

import queueworker.worker as worker_pkg
from queueworker.worker import broker, scripts
from queueworker.worker import producer as producer_mod
from queueworker.worker.broker import RateLimit
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table

QUEUES = ("qalpha", "qbeta")
# Key families (prefix "qw") in no queue's slot that a script may touch beside queue
# keys: none (job hashes, failed stores, unique and concurrency keys, reaper locks are
# all per queue now; the registry is written by plain commands).
UNTAGGED: set[str] = set()
# Scripts that touch one key outside every queue's slot, and nothing else.
SINGLE = {"REGISTER": "qw:workers"}
_NO_KEY = {"TIME", "PING", "ECHO"}
_ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH"}


def script_names() -> dict[str, str]:
    """sha1 -> name of every Lua text in worker/scripts.py and worker/*_lua.py."""
    modules = [scripts] + [importlib.import_module(f"queueworker.worker.{m.name}")
                           for m in pkgutil.iter_modules(worker_pkg.__path__)
                           if m.name.endswith("_lua")]
    out = {}
    for module in modules:
        for name, text in vars(module).items():
            if isinstance(text, str) and "redis.call" in text:
                out[hashlib.sha1(text.encode()).hexdigest()] = name
    return out


def command_keys(command: str) -> list[str]:
    parts = command.split(" ")
    name = parts[0].upper()
    if name in _NO_KEY or len(parts) < 2:
        return []
    return parts[1:] if name in _ALL_KEYS else [parts[1]]


def family(key: str) -> str:
    """``qw:job:1732...-ab12:done`` -> ``qw:job`` (keys outside a queue's slot)."""
    return ":".join(key.split(":")[:2])


class Recorder:
    """MONITOR in a thread: every EVALSHA with the keys its script touched."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.calls: list[tuple[str, list[str]]] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.client.monitor() as m:
            self.ready.set()
            for c in m.listen():
                cmd = str(c["command"])
                if cmd == "ECHO monitor-stop":
                    return
                if c.get("client_type") == "lua" and self.calls:
                    self.calls[-1][1].extend(command_keys(cmd))
                elif cmd.upper().startswith(("EVALSHA ", "EVAL ")):
                    self.calls.append((cmd.split(" ")[1], []))

    def __enter__(self) -> Recorder:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.echo("monitor-stop")
        self.thread.join(10)


def exercise(url: str) -> None:
    producer = Producer(redis.Redis.from_url(url))
    ids = [producer.enqueue("qalpha", {"n": 1}),
           producer.enqueue("qalpha", {"n": 2}, delay=0.2),
           producer.enqueue("qalpha", {"n": 3}, unique_key="u1"),
           producer.enqueue("qbeta", {"n": 4}, concurrency_key="k", concurrency_limit=1),
           producer.enqueue("qbeta", {"n": 5}, concurrency_key="k", concurrency_limit=1),
           producer.enqueue("qbeta", {"fail": True}, max_tries=1)]

    async def handler(payload: dict[str, Any]) -> None:
        if payload.get("fail"):
            raise RuntimeError("planned failure")
        await asyncio.sleep(0.05)

    settings = fast_settings(url, queues=list(QUEUES),
                             rate_limits={"qbeta": RateLimit(100, 1.0)})

    async def settled() -> bool:
        return all((producer.job(i) or {}).get("state") in ("done", "failed", None)
                   for i in ids)

    asyncio.run(run_until(Worker(settings, table(handler)), settled, 20))


def test_native_scripts_keep_a_queue_in_one_slot_and_list_what_is_not(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker and producer as on a cluster (one call per slot, KEYS given), on one
    # redis-server: MONITOR sees every key a script touches.
    for module in (broker, producer_mod):
        monkeypatch.setattr(module, "is_cluster", lambda client: True)
    with Recorder(redis_url) as rec:
        exercise(redis_url)
    names = script_names()
    by_script: dict[str, set[str]] = defaultdict(set)
    spanning: dict[str, int] = defaultdict(int)
    for sha, touched in rec.calls:
        name = names.get(sha, sha[:8])
        for key in touched:
            for q in QUEUES:
                assert q not in key or "{" + q + "}" in key, (
                    f"{name}: key {key!r} of queue {q} lacks the {{{q}}} hash tag")
            if "{" not in key and SINGLE.get(name) != key:
                fam = family(key)
                assert fam in UNTAGGED, (
                    f"{name} touches {key!r} ({fam}) outside any queue's hash slot: give it "
                    "the {queue} hash tag, or list it in UNTAGGED (another Cluster obstacle)")
                by_script[name].add(fam)
        if len({key_slot(k.encode()) for k in touched}) > 1:
            spanning[name] += 1
    print("\nscripts spanning slots (calls):", dict(spanning))
    print("untagged families per script:", {k: sorted(v) for k, v in by_script.items()})
    assert {"ENQUEUE", "FETCH", "SETTLE", "BEAT", "REAP", "REGISTER"} <= {
        names.get(sha) for sha, _ in rec.calls}
    assert dict(spanning) == {}  # see the module docstring
    assert not by_script
