"""Celery workers' heartbeat events (celery/worker/heartbeat.py, kombu/transport/redis.py).

No Redis key holds a Celery worker's state, but every worker sends a
`worker-heartbeat` event every 2 s (`freq`) with `active` (tasks running
now), `hostname` (its node name, `celery@<host name>` unless `-n` says
otherwise) and `pid`, even without `-E` (celery/worker/consumer/events.py
keeps the `worker` group on); `worker-offline` when it stops. kombu PUBLISHes
each as a JSON envelope with the event base64-encoded in `body` on channel
`/<db>.celeryev/worker.heartbeat` (`_get_publish_topic`; `/<db>.celeryev`
without fanout patterns), behind the app's `global_keyprefix` if it has one.
Pub/sub is not a key, so this is a subscription, not a pipelined read:
`CeleryHeartbeats` keeps the newest event per worker, `listen_sync` feeds it
from a thread (local mode), `listen_async` from a task.

A worker is busy when its last heartbeat says `active > 0`. A worker that
has gone silent for `SILENT_AFTER` seconds (without a `worker-offline`) is
counted busy: a `-P solo` worker runs its task in the thread that would
send the heartbeat, so it is silent exactly while it works.

A heartbeat is up to 2 s old, and a task taken since is not in it. Right
before a scale-down the operator asks every worker (`inspect_active`: kombu's
pidbox, celery/app/control.py `inspect().active()`): one PUBLISH on
`/<db>.celery.pidbox`, the replies LPUSHed to a reply queue this call binds
(`_kombu.binding.reply.celery.pidbox`), a few ms for a prefork or threads
pool; all three behind the app's `global_keyprefix` (`_Request`). Replies are
keyed by node name: local mode gives each replica its own
(`CELERY_WORKER_HOSTNAME`, local/pool.py). A solo worker does not answer
while busy: `confirm` counts a worker that was heard beating but does not
answer as busy.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from queueworker.observe.busy.base import WorkerReport
from queueworker.operator.api import QueueLayout, QueueSpec

SILENT_AFTER = 6.0  # seconds: three missed 2 s heartbeats
FORGET_AFTER = 86400.0  # a worker silent this long is gone (SIGKILLed), not busy
# How long a scale-down waits for Celery workers to answer `inspect active`.
CONFIRM_SECONDS = 0.3


# celery's CLI reads its options from CELERY_<COMMAND>_<OPTION> too (celery/bin/celery.py
# `main`: click's auto_envvar_prefix="CELERY"): `-n` of `celery worker` is this, and
# `-n` itself, given, wins. Local mode names each replica's node after the replica.
NODE_NAME = {"CELERY_WORKER_HOSTNAME": "celery@{name}"}


def channels(db: int) -> tuple[str, ...]:
    """The patterns heartbeats arrive on for a Redis database (pub/sub spans databases).

    The leading `*` also hears apps with a kombu `global_keyprefix`, which kombu
    puts before the channel (`PrefixedStrictRedis`: PUBLISH is a prefixed
    command): a worker's node name, not its channel, says which pod it is.
    """
    return (f"*/{db}.celeryev/worker.*", f"*/{db}.celeryev")


@dataclass
class _Seen:
    hostname: str
    pid: int | None
    active: int
    at: float  # time.monotonic() of the last event


def decode(data: bytes | str) -> dict[str, Any] | None:
    """The event inside one kombu message, or None for anything else."""
    try:
        envelope = json.loads(data)
        body = envelope["body"]
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        event = json.loads(body)
    except (ValueError, KeyError, TypeError):
        return None
    return event if isinstance(event, dict) else None


class CeleryHeartbeats:
    """The newest heartbeat of every Celery worker heard (thread-safe)."""

    def __init__(self, one_per_node: bool = False) -> None:
        self._lock = threading.Lock()
        # By node name and pid: under local mode every worker has the same
        # host name (`celery@<this machine>`), told apart only by pid.
        self._workers: dict[tuple[str, int | None], _Seen] = {}
        # In a cluster a node name is one pod's: a new pid under it is the worker
        # restarted (OOM-killed, crashed), and the old one, silent, must not count
        # busy until FORGET_AFTER. Not in local mode, where replicas share a name.
        self.one_per_node = one_per_node

    def feed(self, data: bytes | str, now: float | None = None) -> None:
        event = decode(data)
        if event is None or not str(event.get("type", "")).startswith("worker-"):
            return
        hostname = str(event.get("hostname") or "")
        if not hostname:
            return
        raw_pid = event.get("pid")
        pid = raw_pid if isinstance(raw_pid, int) else None
        with self._lock:
            if event["type"] == "worker-offline":
                self._workers.pop((hostname, pid), None)
                return
            if self.one_per_node:
                for key in [k for k in self._workers if k[0] == hostname and k[1] != pid]:
                    del self._workers[key]
            self._workers[(hostname, pid)] = _Seen(
                hostname, pid, int(event.get("active") or 0),
                time.monotonic() if now is None else now)

    def reports(self, now: float | None = None) -> list[WorkerReport]:
        now = time.monotonic() if now is None else now
        out: list[WorkerReport] = []
        with self._lock:
            for gone in [k for k, w in self._workers.items() if now - w.at > FORGET_AFTER]:
                del self._workers[gone]
            seen = list(self._workers.values())
        for w in seen:
            silent = now - w.at > SILENT_AFTER
            running = max(w.active, 1 if silent else 0)
            # `celery@pod-name`: the part after '@' is the host, i.e. the pod.
            host = w.hostname.rpartition("@")[2] or w.hostname
            out.append(WorkerReport(worker=w.hostname, hostname=host, pid=w.pid,
                                    busy=running > 0, running=running))
        return out


def listen_sync(client: redis.Redis, beats: CeleryHeartbeats, stop: threading.Event) -> None:
    """Feed `beats` until `stop` is set (run it in a daemon thread)."""
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    while not stop.is_set():
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.psubscribe(*channels(db))
            while not stop.is_set():
                msg = pubsub.get_message(timeout=0.5)
                if msg is not None and msg.get("type") == "pmessage":
                    beats.feed(msg["data"])
        except (redis.RedisError, OSError):
            stop.wait(1.0)  # Redis restarting: subscribe again
        finally:
            pubsub.close()


async def listen_async(client: redis.asyncio.Redis, beats: CeleryHeartbeats) -> None:
    """Feed `beats` until cancelled (the operator: one task per Redis and database)."""
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(*channels(db))
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None and msg.get("type") == "pmessage":
                    beats.feed(msg["data"])
        except (redis.RedisError, OSError):
            await asyncio.sleep(1.0)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


# kombu's Redis transport: exchange bindings live in `_kombu.binding.<exchange>`
# as `routing_key SEP pattern SEP queue` (kombu/transport/redis.py `_queue_bind`).
PIDBOX_REPLY_BINDING = "_kombu.binding.reply.celery.pidbox"
BINDING_SEP = "\x06\x16"


@dataclass(frozen=True)
class _Request:
    """One `inspect active` call's keys, as kombu names them under `global_keyprefix`.

    kombu's PrefixedStrictRedis puts the prefix before the first key of SADD,
    SREM, PUBLISH, LPUSH, DEL and BRPOP (`GlobalKeyPrefixMixin`), so the binding
    SET, the pidbox channel and the reply LIST all carry it; the binding's member
    (the reply queue's own name) and the routing key do not.
    """

    binding: str  # the reply exchange's binding SET
    member: str  # this call's binding in it
    channel: str  # the pidbox fanout workers PSUBSCRIBE to
    queue: str  # the reply LIST the workers LPUSH to
    message: str


def prefixes(queues: Sequence[QueueSpec]) -> list[str]:
    """The kombu `global_keyprefix` (keyPrefix) of each Celery app among `queues`."""
    return sorted({q.key_prefix or "" for q in queues if q.layout == QueueLayout.celery})


def _request(db: int, prefix: str) -> _Request:
    oid = str(uuid.uuid4())
    queue = f"{oid}.reply.celery.pidbox"
    return _Request(binding=prefix + PIDBOX_REPLY_BINDING,
                    member=BINDING_SEP.join([oid, "", queue]),
                    channel=f"{prefix}/{db}.celery.pidbox", queue=prefix + queue,
                    message=_inspect_message(oid))


def _inspect_message(oid: str) -> str:
    """`inspect active` as kombu's pidbox Mailbox sends it to every worker."""
    body = {"method": "active", "arguments": {}, "destination": None, "pattern": None,
            "matcher": None, "ticket": str(uuid.uuid4()),
            "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": oid}}
    return json.dumps({
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"clock": 1, "expires": time.time() + 10},
        "properties": {"delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4()),
                       "delivery_info": {"exchange": "celery.pidbox", "routing_key": ""}}})


def active_counts(reply: bytes | str) -> dict[str, int]:
    """Node name -> tasks it runs, from one pidbox reply (`{node: [task, ...]}`)."""
    event = decode(reply)
    if event is None:
        return {}
    return {str(node): len(tasks) for node, tasks in event.items() if isinstance(tasks, list)}


async def inspect_active(client: redis.asyncio.Redis, wait_seconds: float, prefix: str = ""
                         ) -> tuple[dict[str, int], int]:
    """(node name -> tasks running now, workers the request reached); waits for every
    reached worker or `wait_seconds`. `prefix`: the app's kombu `global_keyprefix`
    (the queue spec's keyPrefix). Connection errors raise as they are."""
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    req = _request(db, prefix)
    # execute_command: redis-py's typed commands are typed for sync and async at once.
    await client.execute_command("SADD", req.binding, req.member)  # type: ignore[no-untyped-call]
    try:
        reached = int(await client.publish(req.channel, req.message))
        counts: dict[str, int] = {}
        deadline = time.monotonic() + wait_seconds
        while len(counts) < reached:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = await client.execute_command(  # type: ignore[no-untyped-call]
                "BRPOP", req.queue, f"{max(left, 0.01):.3f}")
            if got is None:
                break
            counts.update(active_counts(got[1]))
        return counts, reached
    finally:
        await client.execute_command(  # type: ignore[no-untyped-call]
            "SREM", req.binding, req.member)
        await client.execute_command("DEL", req.queue)  # type: ignore[no-untyped-call]


def inspect_active_sync(client: redis.Redis, wait_seconds: float, prefix: str = ""
                        ) -> tuple[dict[str, int], int]:
    """The same as `inspect_active`, for a sync client (local mode)."""
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    req = _request(db, prefix)
    client.execute_command("SADD", req.binding, req.member)  # type: ignore[no-untyped-call]
    try:
        reached = int(client.execute_command(  # type: ignore[no-untyped-call]
            "PUBLISH", req.channel, req.message))
        counts: dict[str, int] = {}
        deadline = time.monotonic() + wait_seconds
        while len(counts) < reached:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = client.execute_command(  # type: ignore[no-untyped-call]
                "BRPOP", req.queue, f"{max(left, 0.01):.3f}")
            if got is None:
                break
            counts.update(active_counts(got[1]))
        return counts, reached
    finally:
        client.execute_command("SREM", req.binding, req.member)  # type: ignore[no-untyped-call]
        client.execute_command("DEL", req.queue)  # type: ignore[no-untyped-call]


def confirm(heard: Sequence[WorkerReport], answered: dict[str, int]) -> list[WorkerReport]:
    """Reports that `inspect active` makes busy: workers running tasks now, and workers
    heard beating that did not answer (a busy solo worker answers nothing)."""
    out: list[WorkerReport] = []
    for node, running in answered.items():
        if running > 0:
            host = node.rpartition("@")[2] or node
            out.append(WorkerReport(worker=node, hostname=host, pid=None, busy=True,
                                    running=running))
    for r in heard:
        if r.worker not in answered:
            out.append(WorkerReport(worker=r.worker, hostname=r.hostname, pid=r.pid,
                                    busy=True, running=max(r.running, 1)))
    return out
