"""Steps 2 and 4 of a tick: connect to the QueueWorker's Redis, then read the world.

Everything a decision needs comes from here and from nothing else: the
queue depths (one pipelined round trip, observe/reading.py), the pods and
the Deployment from the kopf indexes (no LIST per poll), the worker
heartbeats (one read per Redis shared by all loops), Celery's heartbeat
events (one subscription per Redis shared by all loops), and this QueueWorker's
share of the free GPUs (context.GPURegistry). The result is an
``Observation`` for the engine plus what act.py needs (the pod index entries).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio

from queueworker.common.redact import redact
from queueworker.engine import capacity as gpu_alloc
from queueworker.engine.types import GPUCapacity, Observation, QueueDepth
from queueworker.observe import busy as busy_reg
from queueworker.observe import connections as redis_conn
from queueworker.observe import heartbeats, reading
from queueworker.observe.batch import Batcher
from queueworker.observe.busy import celery
from queueworker.observe.busy.base import assign
from queueworker.operator import api
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.controller.context import GPURegistry, Indexes, Shared

# How long the Deployment's replicas in the index may lag our own scale patch.
PENDING_REPLICAS_SECONDS = 30.0
Pending = tuple[int, float] | None  # (replicas we patched, time.monotonic() then)


@dataclass(frozen=True)
class Connection:
    client: redis.asyncio.Redis
    secrets: tuple[str, ...]  # values to redact from anything reported


@dataclass(frozen=True)
class QueueReading:
    queues: tuple[QueueDepth, ...] | None  # None: not usable this poll
    error: str | None  # why, redacted
    reachable: bool  # Redis answered (a bad queue is not an unreachable Redis)
    # Other libraries' workers (RQ, Sidekiq): busy or idle per pod, read in the same
    # pipeline as the depths (observe/busy/); empty when none of those layouts is used.
    busy: busy_reg.BusyReading = field(default_factory=busy_reg.BusyReading)


@dataclass(frozen=True)
class Observed:
    obs: Observation
    pods: list[dict[str, Any]]  # the pod index entries (names, deletion costs)
    gpu: GPUCapacity | None
    reading: QueueReading
    pending: Pending
    # Pods busy, idle and unknown (nothing reports on them), and where that comes from:
    # status.busyPods (report.py).
    busy_pods: dict[str, Any] = field(default_factory=dict)


async def connect(shared: Shared, namespace: str, spec: api.QueueWorkerSpec) -> Connection:
    """The client for spec.redis (Secrets read through the API, cached briefly).

    Every referenced Secret is checked before any value is used, so one that has
    not opted in (``context.SECRET_OPT_IN_LABEL``) stops the QueueWorker before a
    client exists: no value of any of its Secrets reaches Redis.
    Raises ``context.SecretMissingError`` (``SecretNotOptedInError`` among them)
    or ``connections.RedisConfigError``."""
    r = spec.redis
    refs = redis_conn.secret_refs(r)
    values = {(ref.name, ref.key): await shared.secret_value(namespace, ref.name, ref.key)
              for ref in refs}
    target = redis_conn.target_from_spec(r, lambda name, key: values[(name, key)])
    secrets = list(target.secrets)
    if r.url_secret_ref is not None:  # a URL kept in a Secret is never shown whole
        secrets.append(values[(r.url_secret_ref.name, r.url_secret_ref.key)].strip())
    return Connection(shared.redis_client(target), tuple(secrets))


async def read_queues(conn: Connection, spec: api.QueueWorkerSpec, now: float,
                      limit_seconds: float, pods: list[dict[str, Any]] | None = None,
                      batcher: Batcher | None = None) -> QueueReading:
    """Every queue's depth and the worker registries, in one pipelined round trip
    (with ``batcher``: the one its Redis sends for every loop polling now)."""
    refs = busy_reg.pod_refs(pods or [])
    try:
        if batcher is not None:  # bounded by its own wait and pipeline deadline: no task
            queues, foreign = await reading.aread_batched(batcher, spec.queues, now, refs)
        else:
            queues, foreign = await asyncio.wait_for(
                busy_reg.aread(conn.client, spec.queues, now, refs), timeout=limit_seconds)
    except reading.QueueReadError as exc:
        return QueueReading(None, redact(f"QueueReadFailed: {exc}", conn.secrets), True)
    except (redis.RedisError, OSError, TimeoutError, ValueError) as exc:
        return QueueReading(None, redact(f"{type(exc).__name__}: {exc}", conn.secrets),
                            False)
    return QueueReading(queues, None, True, foreign)


def next_poll(shared: Shared, conn: Connection, interval: float, now: float) -> float:
    """Seconds from ``now`` (the tick's start) to this loop's next poll: on its Redis's
    grid (``Shared.poll_slot``), so the loops of one Redis read in one pipeline."""
    return shared.poll_slot(conn.client, now, interval) - now


def current_replicas(live: dict[str, Any], pending: Pending, now: float) -> tuple[int, Pending]:
    """The Deployment's replicas, and what is left of ``pending``.

    The index lags our own patch by a watch event; the patched value is
    trusted until the index shows it or ``PENDING_REPLICAS_SECONDS`` pass."""
    value = int((live.get("spec") or {}).get("replicas") or 0)
    if pending is None:
        return value, None
    wanted, at = pending
    if value == wanted or now - at > PENDING_REPLICAS_SECONDS:
        return value, None
    return wanted, pending


def gpu_need(namespace: str, name: str, spec: api.QueueWorkerSpec, backlog: int
             ) -> gpu_alloc.GPUWorker | None:
    if dep.gpu_request(spec) is None:
        return None
    return gpu_alloc.GPUWorker(key=f"{namespace}/{name}", spec=spec,
                               selector=dep.selector_labels(name), backlog=backlog)


def gpu_share(registry: GPURegistry, indexes: Indexes, namespace: str, name: str,
              spec: api.QueueWorkerSpec, backlog: int | None = None, *, fresh: bool = False
              ) -> GPUCapacity | None:
    """This QueueWorker's free GPUs, shared out among all GPU QueueWorkers here.

    ``backlog`` None keeps the one declared last (a rollout check between polls)."""
    key = f"{namespace}/{name}"
    if backlog is None:
        last = registry.need(key)
        backlog = last.backlog if last is not None else 0
    need = gpu_need(namespace, name, spec, backlog)
    if need is None:
        registry.withdraw(key)
        return None
    return registry.capacity(need, indexes, fresh=fresh)


def surge_ok(registry: GPURegistry, indexes: Indexes, namespace: str, name: str,
             spec: api.QueueWorkerSpec) -> bool:
    """Whether a rollout's surge pod would find a free GPU right now."""
    gpu = gpu_share(registry, indexes, namespace, name, spec, fresh=True)
    return gpu is None or gpu.free >= gpu.per_replica


async def observe(shared: Shared, indexes: Indexes, conn: Connection, *, namespace: str,
                  name: str, spec: api.QueueWorkerSpec, live: dict[str, Any], now: float,
                  pending: Pending) -> Observed:
    """Queues, pods, heartbeats, replicas and GPUs: the engine's ``Observation``."""
    pods = indexes.values(indexes.pods, (namespace, name))
    got = await read_queues(conn, spec, now, shared.config.redis_timeout_seconds, pods,
                            shared.batcher(conn.client))
    user = f"{namespace}/{name}"
    if busy_reg.listened(spec.queues):
        # Celery: heartbeat events heard by the Redis's one subscription (context.Shared).
        heard = shared.celery_beats(conn.client, user).reports()
        got = replace(got, busy=got.busy.heard(heard, busy_reg.pod_refs(pods)))
    else:
        shared.celery_release(user)
    beats: dict[str, reading.Heartbeat] = {}
    if (pods and got.queues is not None
            and any(q.layout == api.QueueLayout.native for q in spec.queues)):
        beats = await shared.heartbeats(conn.client, reading.heartbeat_prefix(spec))
    beats = heartbeats.merge(beats, got.busy.beats)
    current, pending = current_replicas(live, pending, time.monotonic())
    ready = int((live.get("status") or {}).get("readyReplicas") or 0)
    backlog = sum(q.waiting + q.in_flight for q in got.queues or ())
    gpu = gpu_share(shared.gpu, indexes, namespace, name, spec, backlog)
    obs = Observation(
        now=now, queues=got.queues, current_replicas=current, ready_replicas=ready,
        pods=reading.pod_states(pods, beats, now), gpu=gpu, error=got.error,
        manual_replicas=spec.replicas,
    )
    return Observed(obs, pods, gpu, got, pending, busy_pods(spec, pods, beats, got.busy))


def busy_pods(spec: api.QueueWorkerSpec, pods: list[dict[str, Any]],
              beats: dict[str, reading.Heartbeat], foreign: busy_reg.BusyReading
              ) -> dict[str, Any]:
    """How many live pods are busy, idle, or *unknown* (no beat, no report)."""
    names = [str(p["name"]) for p in pods if not p.get("terminating")]
    known = [n for n in names if n in beats]
    busy = sum(1 for n in known if beats[n].busy)
    out: dict[str, Any] = {"busy": busy, "idle": len(known) - busy,
                           "unknown": len(names) - len(known)}
    if any(q.layout != api.QueueLayout.native for q in spec.queues):
        out["source"] = busy_reg.describe(foreign, names, spec.queues)
    return out


async def confirm_busy(shared: Shared, conn: Connection, spec: api.QueueWorkerSpec,
                       seen: Observed, *, namespace: str, name: str) -> Observed | None:
    """Right before a scale-down: ask the Celery workers what they run now.

    A heartbeat is up to 2 s old; a task taken since is in no Redis key (early
    ack). `inspect active` (observe/busy/celery.py) answers in a few ms; pods it
    finds busy, and pods of workers heard beating that do not answer (a busy
    solo pool), become busy. Each Celery app is asked behind its keyPrefix (kombu's
    `global_keyprefix`). The Observed with them, or None when nothing changed,
    nothing was asked (no celery queue) or Redis failed."""
    if not busy_reg.listened(spec.queues):
        return None
    heard = shared.celery_beats(conn.client, f"{namespace}/{name}").reports()
    answered: dict[str, int] = {}
    try:
        for prefix in celery.prefixes(spec.queues):
            got, _ = await asyncio.wait_for(
                celery.inspect_active(conn.client, celery.CONFIRM_SECONDS, prefix),
                timeout=shared.config.redis_timeout_seconds + celery.CONFIRM_SECONDS)
            answered.update(got)
    except (redis.RedisError, OSError, TimeoutError):
        return None
    found = assign(celery.confirm(heard, answered), busy_reg.pod_refs(seen.pods))
    pods = tuple(replace(p, busy=True, in_flight=max(p.in_flight, found[p.name].in_flight))
                 if p.name in found and not p.busy else p for p in seen.obs.pods)
    if pods == seen.obs.pods:
        return None
    return replace(seen, obs=replace(seen.obs, pods=pods))
