"""What every QueueWorker loop of one operator process shares, and nothing of the loops.

- ``OperatorConfig``: the operator-wide knobs (the CLI or a test sets them).
- ``Runtime``: what the kopf handlers share through kopf's ``memo``: the
  config, the API credentials, the ``Shared`` caches once started, and which
  QueueWorkers have a loop running here (for the liveness probe).
- ``Shared``: the API client, one Redis client per distinct target and its
  read batcher (observe/batch.py: one pipeline per Redis per poll tick), the
  Secret and heartbeat caches, the Celery heartbeat listeners (one
  subscription per Redis client, for the QueueWorkers that use it), and the
  GPU registry.
- ``GPURegistry``: the GPU *needs* of every GPU QueueWorker here, keyed by
  QueueWorker, and their capacities computed together from the watch indexes.

Nothing here refers to a loop: a loop declares its need and reads its share;
the registry never reaches back into the loop that declared it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf
import redis.asyncio

from queueworker.common.errors import QueueworkerError
from queueworker.engine import capacity as gpu_alloc
from queueworker.engine.types import GPUCapacity
from queueworker.observe import batch, reading
from queueworker.observe import connections as redis_conn
from queueworker.observe.busy.celery import CeleryHeartbeats, listen_async
from queueworker.operator import metrics
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import index as kube_index

QWKey = kube_index.QWKey
# How long one computed GPU share-out or one heartbeat read serves every loop.
SHARED_READ_SECONDS = 0.5


@dataclass
class OperatorConfig:
    """Operator-wide knobs; the CLI and the tests set them."""

    status_refresh_seconds: float = 10.0
    # The engine memory alone (nothing a person reads moved) is written at most this
    # often: it is read back only when a loop starts (report.py).
    memory_refresh_seconds: float = 60.0
    # After marking scale-down victims, replicas drop once our pod index shows the
    # marks, plus this margin (act.await_marks), or after the wait limit at most.
    deletion_cost_margin_seconds: float = 0.5
    deletion_cost_wait_seconds: float = 10.0
    secret_cache_seconds: float = 30.0
    redis_timeout_seconds: float = 3.0
    retry_seconds: float = 5.0  # next try after a bad spec, a missing Secret, an API error
    # The loops of one Redis poll at the same moments (batch.slot); their reads
    # leave as one pipeline once none came for the window, or max_wait after the
    # first (batch.Batcher).
    redis_batch_window_seconds: float = 0.02
    redis_batch_max_wait_seconds: float = 0.25
    refuse_privileged: bool = False  # --refuse-privileged: see podsecurity.py
    # --shard / --shard-selector: the QueueWorker watch's label selector (shard.py);
    # None: every QueueWorker in the watched namespaces.
    shard_selector: str | None = None
    # --shard NAME: stamped on the Deployments and pods this operator builds, and the
    # label selector of its Deployment and pod watches (docs/sharding.md).
    shard: str | None = None
    # --shard-all-pods: the pod watch stays unfiltered (GPU QueueWorkers in the shard:
    # free GPUs count every pod on a node, cluster/index.py GPU_PODS).
    shard_all_pods: bool = False


# A Secret the operator may read and send to spec.redis: it must carry this label.
# The operator may `get` any Secret, and whoever writes a QueueWorker chooses the
# Redis host its value goes to; the label is the Secret owner's consent, so a user
# who cannot read a Secret cannot have the operator send it to a server of theirs.
SECRET_OPT_IN_LABEL = "queueworker.dev/use"
SECRET_OPT_IN_VALUE = "true"


class SecretMissingError(QueueworkerError):
    reason = "SecretNotFound"  # the SpecValid condition's reason and the Event's


class SecretNotOptedInError(SecretMissingError):
    reason = "SecretNotOptedIn"


def secret_opted_in(doc: Mapping[str, Any]) -> bool:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return labels.get(SECRET_OPT_IN_LABEL) == SECRET_OPT_IN_VALUE


@dataclass
class Indexes:
    """The kopf indexes a loop reads (live mappings of key -> store of values)."""

    pods: Mapping[Any, Any]
    nodes: Mapping[Any, Any]
    deployments: Mapping[Any, Any]

    def values(self, index: Mapping[Any, Any], key: Any) -> list[Any]:
        store = index.get(key)
        return list(store) if store is not None else []


class GPURegistry:
    """GPU needs keyed by QueueWorker ("namespace/name"), shared out together.

    Every GPU QueueWorker of the process competes for the same free GPUs, so
    the share-out (priorities, pending pods first: engine/capacity.py) is
    computed for all needs at once and reused for ``SHARED_READ_SECONDS``.
    """

    def __init__(self) -> None:
        self._needs: dict[str, gpu_alloc.GPUWorker] = {}
        self._last: tuple[float, dict[str, GPUCapacity]] | None = None

    def need(self, key: str) -> gpu_alloc.GPUWorker | None:
        return self._needs.get(key)

    def withdraw(self, key: str) -> None:
        self._needs.pop(key, None)

    def capacity(self, need: gpu_alloc.GPUWorker, indexes: Indexes, *, fresh: bool = False
                 ) -> GPUCapacity | None:
        """Declare (or update) ``need`` and return its share of the free GPUs.

        ``fresh`` recomputes even within ``SHARED_READ_SECONDS`` (a rollout
        strategy is chosen from the GPUs free at that moment)."""
        self._needs[need.key] = need
        return self.capacities(indexes, fresh=fresh).get(need.key)

    def capacities(self, indexes: Indexes, *, fresh: bool = False) -> dict[str, GPUCapacity]:
        now = time.monotonic()
        last = self._last
        if (not fresh and last is not None and now - last[0] < SHARED_READ_SECONDS
                and self._needs.keys() <= last[1].keys()):
            return last[1]
        nodes = [v for store in indexes.nodes.values() for v in store]
        pods = indexes.values(indexes.pods, kube_index.GPU_PODS)
        result = gpu_alloc.capacities(nodes, pods, list(self._needs.values()))
        self._last = (now, result)
        return result


@dataclass
class CeleryListener:
    """One subscription to a Redis's Celery heartbeat events, and who uses it."""

    beats: CeleryHeartbeats
    task: asyncio.Task[None]
    users: set[str] = field(default_factory=set)  # "namespace/name" of QueueWorkers


class Shared:
    """Per operator process: the API client, Redis clients and caches."""

    def __init__(self, config: OperatorConfig,
                 kube_client: kube.KubeClient | Callable[[], kube.KubeClient]) -> None:
        self.config = config
        # kopf runs startup handlers before it logs in: build the client on first use.
        self._kube = kube_client if isinstance(kube_client, kube.KubeClient) else None
        self._kube_factory = None if isinstance(kube_client, kube.KubeClient) else kube_client
        self._redis: dict[redis_conn.RedisTarget, redis.asyncio.Redis] = {}
        # (namespace, name) -> (read at, data); data None: no such Secret, False: not
        # opted in (its data is dropped undecoded, never kept).
        self._secrets: dict[tuple[str, str],
                            tuple[float, dict[str, str] | Literal[False] | None]] = {}
        self._beats: dict[tuple[int, str], tuple[float, dict[str, reading.Heartbeat]]] = {}
        # A heartbeat read in flight, awaited by every loop that asks meanwhile.
        self._beats_reading: dict[tuple[int, str],
                                  asyncio.Future[dict[str, reading.Heartbeat]]] = {}
        self._batchers: dict[int, batch.Batcher] = {}  # id(Redis client) -> its batcher
        # id(Redis client) -> its Celery heartbeat subscription. Clients live as long
        # as this object (``redis_client``), so their ids stay theirs.
        self._celery: dict[int, CeleryListener] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self.gpu = GPURegistry()

    @property
    def kube(self) -> kube.KubeClient:
        if self._kube is None:
            assert self._kube_factory is not None
            self._kube = self._kube_factory()
        return self._kube

    async def close(self) -> None:
        tasks = [listener.task for listener in self._celery.values()] + list(self._stopping)
        self._celery.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        for client in self._redis.values():
            try:
                await client.aclose()
            except Exception:  # closing a dead connection must not stop the shutdown
                pass
        self._redis.clear()
        if self._kube is not None:
            await self._kube.close()

    def redis_client(self, target: redis_conn.RedisTarget) -> redis.asyncio.Redis:
        """One client (and connection pool) per distinct Redis target, shared by loops."""
        client = self._redis.get(target)
        if client is None:
            timeout = self.config.redis_timeout_seconds
            client = target.async_client(socket_timeout=timeout,
                                         socket_connect_timeout=timeout)
            self._redis[target] = client
        return client

    def batcher(self, client: redis.asyncio.Redis) -> batch.Batcher:
        """The read batcher of ``client`` (one of ``redis_client``'s, so its id stays its)."""
        batcher = self._batchers.get(id(client))
        if batcher is None:
            batcher = batch.Batcher(client, self.config.redis_batch_window_seconds,
                                    self.config.redis_batch_max_wait_seconds,
                                    on_send=_count_pipeline,
                                    timeout=self.config.redis_timeout_seconds)
            self._batchers[id(client)] = batcher
        return batcher

    def poll_slot(self, client: redis.asyncio.Redis, now: float, interval: float) -> float:
        """When a loop on ``client``'s Redis polls next (epoch seconds, batch.slot):
        every loop of that Redis and interval on one grid, so their reads meet."""
        pool = client.connection_pool
        kw = pool.connection_kwargs
        # A Sentinel pool names its master; a unix socket its path; else host:port.
        address = str(getattr(pool, "service_name", None) or kw.get("path")
                      or f"{kw.get('host', '')}:{kw.get('port', '')}")
        return batch.slot(now, interval, batch.phase_of(address))

    async def heartbeats(self, client: redis.asyncio.Redis, prefix: str
                         ) -> dict[str, reading.Heartbeat]:
        """Worker heartbeats of one Redis and prefix, read at most twice a second.

        Every QueueWorker on a Redis shares its ``{prefix}:workers`` set, so the
        loops share one read of it instead of each reading all of it."""
        key = (id(client), prefix)
        cached = self._beats.get(key)
        if cached is not None and time.monotonic() - cached[0] < SHARED_READ_SECONDS:
            return cached[1]
        # Loops polling together (poll_slot) all miss at once: one read for all of them.
        inflight = self._beats_reading.get(key)
        if inflight is None:
            inflight = asyncio.ensure_future(self._read_beats(key, client, prefix))
            self._beats_reading[key] = inflight
            inflight.add_done_callback(lambda _: self._beats_reading.pop(key, None))
        return await asyncio.shield(inflight)

    async def _read_beats(self, key: tuple[int, str], client: redis.asyncio.Redis,
                          prefix: str) -> dict[str, reading.Heartbeat]:
        try:
            beats = await asyncio.wait_for(reading.read_heartbeats(client, prefix),
                                           timeout=self.config.redis_timeout_seconds)
        except (redis.RedisError, OSError, TimeoutError):
            beats = {}
        self._beats[key] = (time.monotonic(), beats)
        return beats

    def celery_beats(self, client: redis.asyncio.Redis, user: str) -> CeleryHeartbeats:
        """The Celery heartbeats heard on ``client``'s Redis, for QueueWorker ``user``.

        Pub/sub is not a key the poll's pipeline can read: one task per Redis
        client subscribes (observe/busy/celery.py ``listen_async``) for every
        QueueWorker on it, started by the first that asks and stopped when the
        last lets go (``celery_release``). A task that died is started again."""
        key = id(client)
        for other, elsewhere in list(self._celery.items()):
            if other != key and user in elsewhere.users:  # it moved to another Redis
                self._drop(other, user)
        listener = self._celery.get(key)
        if listener is None or listener.task.done():
            beats = CeleryHeartbeats(one_per_node=True)  # a node name is one pod's
            task = asyncio.create_task(listen_async(client, beats), name="celery-heartbeats")
            listener = CeleryListener(beats, task, listener.users if listener else set())
            self._celery[key] = listener
        listener.users.add(user)
        return listener.beats

    def celery_release(self, user: str) -> None:
        """``user`` no longer listens (stopped, or no celery queue any more)."""
        for key, listener in list(self._celery.items()):
            if user in listener.users:
                self._drop(key, user)

    def celery_listeners(self) -> int:
        """Subscriptions running now (tests, metrics)."""
        return sum(1 for listener in self._celery.values() if not listener.task.done())

    def _drop(self, key: int, user: str) -> None:
        listener = self._celery[key]
        listener.users.discard(user)
        if not listener.users:
            listener.task.cancel()
            self._stopping.add(listener.task)  # a strong reference until it has ended
            listener.task.add_done_callback(self._stopping.discard)
            del self._celery[key]

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, read through the API and cached ``secret_cache_seconds``.

        Only a Secret labelled ``queueworker.dev/use: "true"`` is used; any other
        raises ``SecretNotOptedInError`` and its data is neither decoded nor kept."""
        now = time.monotonic()
        cached = self._secrets.get((namespace, name))
        if cached is None or now - cached[0] > self.config.secret_cache_seconds:
            doc = await self.kube.get(kube.secret_path(namespace, name), operation="get_secret")
            data: dict[str, str] | Literal[False] | None = None
            if doc is not None:
                data = _secret_data(doc) if secret_opted_in(doc) else False
            del doc  # the raw Secret (its base64 data) goes no further than this check
            cached = (now, data)
            self._secrets[(namespace, name)] = cached
        data = cached[1]
        if data is None:
            raise SecretMissingError(f"Secret {namespace}/{name} not found")
        if data is False:
            raise SecretNotOptedInError(
                f"Secret {namespace}/{name} is not labelled {SECRET_OPT_IN_LABEL}="
                f"\"{SECRET_OPT_IN_VALUE}\": the operator uses only Secrets that opt in")
        if key not in data:
            raise SecretMissingError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]


def _count_pipeline(requests: int, commands: int) -> None:
    metrics.redis_pipelines.inc()
    metrics.redis_batched_reads.inc(requests)


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    return {**data, **(doc.get("stringData") or {})}


@dataclass
class Runtime:
    """What the kopf handlers share, carried in kopf's ``memo`` (see handlers.py).

    The CLI and the test harness build it the same way
    (``handlers.operator_memo``) and hand it to ``kopf.operator(memo=...)``.
    kopf gives each QueueWorker a shallow copy of that memo, so this one object
    is what all of them see.
    """

    config: OperatorConfig = field(default_factory=OperatorConfig)
    # Preset by a test (the emulator's address); otherwise the login handler fills it.
    connection: kopf.ConnectionInfo | None = None
    shared: Shared | None = None  # from the startup handler to the cleanup handler
    running: set[QWKey] = field(default_factory=set)  # QueueWorkers with a loop here
