"""Which hash slots the native layout's Lua scripts touch (Redis Cluster readiness).

A worker runs jobs of every kind (plain, delayed, unique, with a concurrency
key, rate limited, failing) over two queues on one redis-server while MONITOR
records what each script did. A script may run on Redis Cluster only if every
key it touches is in one hash slot. Held here:

- every key of a queue carries the queue's ``{queue}`` hash tag (one slot per queue);
- every key outside a queue's slot belongs to a family listed in ``UNTAGGED``
  (a new family must be tagged, or listed: it is one more obstacle to Cluster);
- today some scripts do span several slots, which is why worker/connection.py
  refuses ``redis+cluster://`` (CLUSTER_REFUSAL). When the layout is made
  cluster-safe this last assertion fails: then lift the refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
import threading
from collections import defaultdict
from typing import Any

import redis
from redis.cluster import key_slot

import queueworker.worker as worker_pkg
from queueworker.worker import scripts
from queueworker.worker.broker import RateLimit
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table

QUEUES = ("qalpha", "qbeta")
# Key families (prefix "qw") that are in no queue's slot. Each is why a script
# spans slots: job hashes (and their :done / :progress keys), the failed store,
# the worker registry, unique and concurrency keys, the reaper's lock.
UNTAGGED = {"qw:job", "qw:failed", "qw:workers", "qw:worker", "qw:unique", "qw:conc",
            "qw:reaper"}
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


def test_native_scripts_keep_a_queue_in_one_slot_and_list_what_is_not(redis_url: str) -> None:
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
            if "{" not in key:
                fam = family(key)
                assert fam in UNTAGGED, (
                    f"{name} touches {key!r} ({fam}) outside any queue's hash slot: give it "
                    "the {queue} hash tag, or list it in UNTAGGED (another Cluster obstacle)")
                by_script[name].add(fam)
        if len({key_slot(k.encode()) for k in touched}) > 1:
            spanning[name] += 1
    print("\nscripts spanning slots (calls):", dict(spanning))
    print("untagged families per script:", {k: sorted(v) for k, v in by_script.items()})
    assert {"ENQUEUE", "SETTLE"} <= set(spanning)  # see the module docstring
