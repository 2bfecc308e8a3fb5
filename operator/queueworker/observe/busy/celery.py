"""Celery workers' heartbeat events (celery/worker/heartbeat.py, kombu/transport/redis.py).

No Redis key holds a Celery worker's state, but every worker sends a
`worker-heartbeat` event every 2 s (`freq`) with `active` (tasks running
now), `hostname` (its node name, `celery@<host name>` unless `-n` says
otherwise) and `pid`, even without `-E` (celery/worker/consumer/events.py
keeps the `worker` group on); `worker-offline` when it stops. kombu PUBLISHes
each as a JSON envelope with the event base64-encoded in `body` on channel
`/<db>.celeryev/worker.heartbeat` (`_get_publish_topic`; `/<db>.celeryev`
without fanout patterns). Pub/sub is not a key, so this is a subscription,
not a pipelined read: `CeleryHeartbeats` keeps the newest event per worker,
`listen_sync` feeds it from a thread (local mode), `listen_async` from a task.

A worker is busy when its last heartbeat says `active > 0`. A worker that
has gone silent for `SILENT_AFTER` seconds (without a `worker-offline`) is
counted busy: a `-P solo` worker runs its task in the thread that would
send the heartbeat, so it is silent exactly while it works.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from queueworker.observe.busy.base import WorkerReport

SILENT_AFTER = 6.0  # seconds: three missed 2 s heartbeats
FORGET_AFTER = 86400.0  # a worker silent this long is gone (SIGKILLed), not busy


def channels(db: int) -> tuple[str, ...]:
    """The patterns heartbeats arrive on for a Redis database (pub/sub spans databases)."""
    return (f"/{db}.celeryev/worker.*", f"/{db}.celeryev")


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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # By node name and pid: under local mode every worker has the same
        # host name (`celery@<this machine>`), told apart only by pid.
        self._workers: dict[tuple[str, int | None], _Seen] = {}

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
