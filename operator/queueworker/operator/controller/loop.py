"""The per-QueueWorker loop: reconcile the Deployment, observe, decide, act, report.

Why one asyncio task per QueueWorker (a kopf daemon) and not one shared poller
per Redis: every QueueWorker has its own poll interval, its own engine memory
and its own failure state, and a daemon gives each of them a lifetime that
kopf ties to the object (started on create/resume, stopped on delete, paused
with peering). What a shared poller would save is connections and round
trips; connections are already shared (one client per distinct Redis target,
``Shared.redis_client``) and each poll is a single pipelined round trip for all
of the QueueWorker's queues. The benchmark (benchmarks/operator/RESULTS.md)
measured 1,000 QueueWorkers at a 2 s poll in one process within the CPU and
memory targets, so the simpler design stays.

A poll never LISTs anything: the Deployment, the pods and the nodes come from
kopf indexes (kube_index.py). Writes are few: the Deployment's replicas only
when they change, pod-deletion-cost once before a scale-down, and the status
only when something a person acts on changes (conditions, replicas, scale
reason), otherwise at most every ``status_refresh_seconds`` for the volatile
numbers (backlog, ages, engine memory).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import redis.asyncio

from queueworker.engine import capacity as gpu_alloc
from queueworker.engine.types import Decision, GPUCapacity, Observation, QueueDepth
from queueworker.observe import connections as redis_conn
from queueworker.observe import reading as autoscale
from queueworker.operator import api, metrics
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.cluster import status as st
from queueworker.operator.podsecurity import privileged_reasons
from queueworker.operator.validation import SpecError, SpecProblem, parse_spec

logger = logging.getLogger(__name__)

IDLE_COST = "-100"  # pod-deletion-cost of idle pods chosen to go first (default is 0)


@dataclass
class OperatorConfig:
    """Operator-wide knobs; the CLI and the tests set them."""

    status_refresh_seconds: float = 10.0
    deletion_cost_delay_seconds: float = 1.0
    secret_cache_seconds: float = 30.0
    redis_timeout_seconds: float = 3.0
    retry_seconds: float = 5.0  # next try after a bad spec, a missing Secret, an API error
    refuse_privileged: bool = False  # --refuse-privileged: see podsecurity.py


class SecretMissing(Exception):
    pass


@dataclass
class Indexes:
    """The kopf indexes a loop reads (live mappings of key -> store of values)."""

    pods: Mapping[Any, Any]
    nodes: Mapping[Any, Any]
    deployments: Mapping[Any, Any]


class Shared:
    """Per operator process: the API client, Redis clients and caches."""

    def __init__(self, config: OperatorConfig,
                 kube_client: kube.KubeClient | Callable[[], kube.KubeClient]) -> None:
        self.config = config
        # kopf runs startup handlers before it logs in: build the client on first use.
        self._kube = kube_client if isinstance(kube_client, kube.KubeClient) else None
        self._kube_factory = None if isinstance(kube_client, kube.KubeClient) else kube_client
        self._redis: dict[redis_conn.RedisTarget, redis.asyncio.Redis] = {}
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self.loops: dict[tuple[str, str], QueueWorkerLoop] = {}
        self._gpu: tuple[float, dict[str, GPUCapacity]] | None = None
        self._beats: dict[tuple[int, str], tuple[float, dict[str, autoscale.Heartbeat]]] = {}

    @property
    def kube(self) -> kube.KubeClient:
        if self._kube is None:
            assert self._kube_factory is not None
            self._kube = self._kube_factory()
        return self._kube

    async def close(self) -> None:
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

    def gpu_capacities(self, indexes: Indexes, fresh: bool = False
                       ) -> dict[str, GPUCapacity]:
        """GPU capacity of every GPU QueueWorker of this process, computed together
        (priorities, pending pods first) at most twice a second."""
        now = time.monotonic()
        workers = [loop.gpu_worker for loop in self.loops.values()
                   if loop.gpu_worker is not None]
        keys = {w.key for w in workers}
        if (not fresh and self._gpu is not None and now - self._gpu[0] < 0.5
                and keys <= set(self._gpu[1])):
            return self._gpu[1]
        nodes = [v for store in indexes.nodes.values() for v in store]
        pods = _store_values(indexes.pods, kube_index.GPU_PODS)
        result = gpu_alloc.capacities(nodes, pods, workers)
        self._gpu = (now, result)
        return result

    async def heartbeats(self, client: redis.asyncio.Redis, prefix: str, now: float
                         ) -> dict[str, autoscale.Heartbeat]:
        """Worker heartbeats of one Redis and prefix, read at most twice a second.

        Every QueueWorker on a Redis shares its ``{prefix}:workers`` set, so the
        loops share one read of it instead of each reading all of it."""
        key = (id(client), prefix)
        cached = self._beats.get(key)
        if cached is not None and time.monotonic() - cached[0] < 0.5:
            return cached[1]
        try:
            beats = await asyncio.wait_for(autoscale.read_heartbeats(client, prefix),
                                           timeout=self.config.redis_timeout_seconds)
        except (redis.RedisError, OSError, TimeoutError):
            beats = {}
        self._beats[key] = (time.monotonic(), beats)
        return beats

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        now = time.monotonic()
        cached = self._secrets.get((namespace, name))
        if cached is None or now - cached[0] > self.config.secret_cache_seconds:
            doc = await self.kube.get(kube.secret_path(namespace, name), operation="get_secret")
            data = None if doc is None else {
                k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()
            }
            if doc is not None:
                data = {**data, **(doc.get("stringData") or {})} if data is not None else None
            cached = (now, data)
            self._secrets[(namespace, name)] = cached
        data = cached[1]
        if data is None:
            raise SecretMissing(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise SecretMissing(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]


def _shape(value: Any) -> Any:
    """A value with its timestamps blanked: what is worth a status write.

    The engine's memory stamps its entries with the poll time; an idle
    QueueWorker's memory differs at every poll only in those stamps, and
    writing them would cost 1,000 QueueWorkers hundreds of writes a minute.
    """
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value]
    if isinstance(value, float) and value > 1e9:  # epoch seconds
        return 0.0
    return value


def _store_values(index: Mapping[Any, Any], key: Any) -> list[Any]:
    store = index.get(key)
    return list(store) if store is not None else []


def scale_reason(decision: Decision, obs: Observation, paused: bool) -> str:
    """Short CamelCase reason for metrics and Events."""
    if paused:
        return "Manual"
    if obs.queues is None:
        return "Fallback"
    if decision.gpu_limited and decision.direction == "down":
        return "GPULimited"
    return "Backlog" if decision.direction == "up" else "Idle"


class QueueWorkerLoop:
    def __init__(self, shared: Shared, body: Any, indexes: Indexes) -> None:
        self.shared = shared
        self.body = body  # kopf's live view: always the latest object
        meta = body["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid") or ""
        self.indexes = indexes
        self.kick = asyncio.Event()
        status = dict(body.get("status") or {})
        memory = status.get("engineMemory")
        self.memory: dict[str, Any] = dict(memory) if isinstance(memory, dict) else {}
        self.conditions: list[dict[str, Any]] = st.with_all_types(status.get("conditions") or [])
        self.last_scale_time: str | None = status.get("lastScaleTime")
        self.last_scale_reason: str | None = status.get("lastScaleReason")
        self.last_written: dict[str, Any] | None = None
        self.last_written_at = 0.0
        self.last_backlog = 0
        self.last_volatile: dict[str, Any] | None = None
        self.last_problem: str | None = None
        self.pending_replicas: tuple[int, float] | None = None
        self.created: dict[str, Any] | None = None
        self.corrected_digest: str | None = None
        self.spec_cache: tuple[Any, api.QueueWorkerSpec] | None = None
        self.bad_spec_key: tuple[Any, ...] | None = None
        self.last_fingerprint: tuple[Any, ...] | None = None
        self.gpu_worker: gpu_alloc.GPUWorker | None = None
        self.desired_cache: tuple[bool, dict[str, Any]] | None = None
        # The index entry last found in line with the spec (held, so compared by identity).
        self.checked: tuple[dict[str, Any], str] | None = None
        self.labels = {"namespace": self.namespace, "queueworker": self.name}
        # Children of the per-QueueWorker series, looked up once (a poll is hot).
        self.m_last_poll = metrics.last_poll.labels(**self.labels)
        self.m_max_replicas = metrics.max_replicas.labels(**self.labels)
        self.m_spec_valid = metrics.spec_valid.labels(**self.labels)
        self.m_decision = metrics.decision_duration.labels(**self.labels)
        self.m_reconcile = metrics.reconcile_duration.labels(**self.labels)
        self.m_redis_errors = metrics.redis_errors.labels(**self.labels)
        self.m_redis_up = metrics.redis_up.labels(**self.labels)
        self.m_desired = metrics.desired_replicas.labels(**self.labels)
        self.m_current = metrics.current_replicas.labels(**self.labels)
        self.m_ready = metrics.ready_replicas.labels(**self.labels)
        self.m_gpu_limited = metrics.gpu_limited.labels(**self.labels)

    # ----------------------------------------------------------------------- running

    async def run(self, stopped: Any) -> None:
        self.shared.loops[(self.namespace, self.name)] = self
        try:
            while not stopped:
                started = time.monotonic()
                interval = await self.tick_safely()
                delay = max(0.0, interval - (time.monotonic() - started))
                await self.sleep(stopped, delay)
        finally:
            if self.shared.loops.get((self.namespace, self.name)) is self:
                del self.shared.loops[(self.namespace, self.name)]

    async def sleep(self, stopped: Any, delay: float) -> None:
        """Until the next poll or an early kick (spec changed).

        A stop does not wake this sleep: kopf cancels the daemon after its
        cancellation backoff, which is all a sleeping loop needs (no helper
        tasks here, so nothing is left behind for kopf to find at exit).
        """
        self.kick.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.kick.wait(), timeout=delay)

    async def tick_safely(self) -> float:
        retry = self.shared.config.retry_seconds * random.uniform(0.8, 1.2)
        try:
            return await self.tick()
        except kube.ApiError as exc:
            logger.warning("API error, retrying", extra={"qw": self.name, "error": str(exc)})
            return retry
        except Exception:
            # One QueueWorker's bug must not end its loop for good (kopf would not
            # restart the daemon) nor touch the others.
            logger.exception("poll failed", extra={"qw": self.name})
            return retry

    # -------------------------------------------------------------------------- tick

    async def tick(self) -> float:
        config = self.shared.config
        meta = self.body["metadata"]
        if meta.get("deletionTimestamp"):
            return config.retry_seconds
        generation = meta.get("generation")
        annotations = meta.get("annotations") or {}
        now = time.time()
        self.m_last_poll.set(now)
        try:
            spec = self.parsed_spec(meta, annotations.get(dep.PAUSED_ANNOTATION) == "true")
        except SpecError as exc:
            await self.invalid("InvalidSpec", str(exc), generation)
            return config.retry_seconds
        paused = spec.scaling.paused
        self.m_max_replicas.set(spec.scaling.max_replicas)

        try:
            client, secrets = await self.redis_for(spec)
        except SecretMissing as exc:
            await self.invalid("SecretNotFound", str(exc), generation)
            return config.retry_seconds
        except redis_conn.RedisConfigError as exc:
            await self.invalid("InvalidRedis", st.redact(str(exc)), generation)
            return config.retry_seconds

        live = await self.reconcile(spec)
        if live is None:
            return config.retry_seconds
        self.m_spec_valid.set(1)
        self.last_problem = None

        started = time.perf_counter()
        queues, error = await self.read_queues(client, spec, now, secrets)
        pods = _store_values(self.indexes.pods, (self.namespace, self.name))
        beats: dict[str, autoscale.Heartbeat] = {}
        if (pods and queues is not None
                and any(q.layout == api.QueueLayout.native for q in spec.queues)):
            beats = await self.shared.heartbeats(client, self.native_prefix(spec), now)
        current = self.current_replicas(live)
        ready = int((live.get("status") or {}).get("readyReplicas") or 0)
        gpu = self.gpu_capacity(spec, sum(q.waiting + q.in_flight for q in queues or ()))
        obs = Observation(
            now=now, queues=queues, current_replicas=current, ready_replicas=ready,
            pods=autoscale.pod_states(pods, beats), gpu=gpu, error=error,
            manual_replicas=spec.replicas,
        )
        decision = autoscale.decide(spec, obs, self.memory)
        self.m_decision.observe(time.perf_counter() - started)
        self.memory = dict(decision.memory)

        if decision.desired != current:
            await self.scale(decision, obs, pods, paused)
            current = decision.desired
        await self.report(spec, obs, decision, live, current, generation, paused, gpu)
        return spec.scaling.poll_interval_seconds

    # ---------------------------------------------------------------------- pieces

    @staticmethod
    def spec_key(meta: Mapping[str, Any]) -> tuple[Any, ...]:
        generation = meta.get("generation")
        paused = (meta.get("annotations") or {}).get(dep.PAUSED_ANNOTATION) == "true"
        return (generation, paused,
                None if generation is not None else meta.get("resourceVersion"))

    def spec_changed(self, meta: Mapping[str, Any]) -> bool:
        key = self.spec_key(meta)
        if key == self.bad_spec_key:
            return False
        return self.spec_cache is None or self.spec_cache[0] != key

    def parsed_spec(self, meta: Mapping[str, Any], paused_annotation: bool
                    ) -> api.QueueWorkerSpec:
        """The validated spec, parsed again only when it changed (generation bumps on
        every spec change; the poll runs far more often than specs change)."""
        key = self.spec_key(meta)
        if self.spec_cache is not None and self.spec_cache[0] == key:
            return self.spec_cache[1]
        try:
            spec = parse_spec(dict(self.body.get("spec") or {}))
            if self.shared.config.refuse_privileged:
                refused = privileged_reasons(dict((self.body.get("spec") or {})
                                                  .get("template") or {}))
                if refused:
                    raise SpecError([SpecProblem(r.split(":", 1)[0], r.split(": ", 1)[-1]
                                                 + " is refused by this operator",
                                                 "--refuse-privileged") for r in refused])
        except SpecError:
            self.bad_spec_key = key
            raise
        if paused_annotation and not spec.scaling.paused:
            spec = spec.model_copy(update={
                "scaling": spec.scaling.model_copy(update={"paused": True})})
        self.spec_cache = (key, spec)
        self.desired_cache = None
        return spec

    def native_prefix(self, spec: api.QueueWorkerSpec) -> str:
        for q in spec.queues:
            if q.layout == api.QueueLayout.native:
                return q.key_prefix or "qw"
        return "qw"

    async def redis_for(self, spec: api.QueueWorkerSpec
                        ) -> tuple[redis.asyncio.Redis, list[str]]:
        """The client for spec.redis (Secrets read through the API, cached briefly)."""
        r = spec.redis
        refs = [ref for ref in (r.url_secret_ref, r.password_secret_ref, r.tls.ca_secret_ref)
                if ref is not None]
        values = {(ref.name, ref.key): await self.shared.secret_value(
            self.namespace, ref.name, ref.key) for ref in refs}
        target = redis_conn.target_from_spec(r, lambda name, key: values[(name, key)])
        secrets = list(target.secrets)
        if r.url_secret_ref is not None:  # a URL kept in a Secret is never shown whole
            secrets.append(values[(r.url_secret_ref.name, r.url_secret_ref.key)].strip())
        return self.shared.redis_client(target), secrets

    async def read_queues(self, client: redis.asyncio.Redis, spec: api.QueueWorkerSpec,
                          now: float, secrets: list[str]
                          ) -> tuple[tuple[QueueDepth, ...] | None, str | None]:
        try:
            queues = await asyncio.wait_for(autoscale.read_depths(client, spec.queues, now),
                                            timeout=self.shared.config.redis_timeout_seconds)
        except autoscale.QueueReadError as exc:
            self.m_redis_errors.inc()
            self.m_redis_up.set(1)
            return None, st.redact(f"QueueReadFailed: {exc}", secrets)
        except (redis.RedisError, OSError, TimeoutError, ValueError) as exc:
            self.m_redis_errors.inc()
            self.m_redis_up.set(0)
            text = st.redact(f"{type(exc).__name__}: {exc}", secrets)
            return None, text
        self.m_redis_up.set(1)
        return queues, None

    def gpu_capacity(self, spec: api.QueueWorkerSpec, backlog: int | None = None,
                     fresh: bool = False) -> GPUCapacity | None:
        """Free GPUs for this QueueWorker, shared out among all GPU QueueWorkers here."""
        if dep.gpu_request(spec) is None:
            self.gpu_worker = None
            return None
        if backlog is None and self.gpu_worker is not None:
            backlog = self.gpu_worker.backlog
        self.gpu_worker = gpu_alloc.GPUWorker(
            key=f"{self.namespace}/{self.name}", spec=spec,
            selector=dep.selector_labels(self.name), backlog=backlog or 0)
        return self.shared.gpu_capacities(self.indexes, fresh).get(self.gpu_worker.key)

    def current_replicas(self, live: Mapping[str, Any]) -> int:
        value = int((live.get("spec") or {}).get("replicas") or 0)
        if self.pending_replicas is not None:
            wanted, at = self.pending_replicas
            # The index lags our own patch by a watch event; trust the patch for a while.
            if value == wanted or time.monotonic() - at > 30:
                self.pending_replicas = None
            else:
                return wanted
        return value

    async def reconcile(self, spec: api.QueueWorkerSpec) -> dict[str, Any] | None:
        """Make the Deployment match the spec; the live Deployment (or None: do not scale)."""
        started = time.perf_counter()
        try:
            return await self._reconcile(spec)
        finally:
            self.m_reconcile.observe(
                time.perf_counter() - started)

    async def _reconcile(self, spec: api.QueueWorkerSpec) -> dict[str, Any] | None:
        kc = self.shared.kube
        live = next(iter(_store_values(self.indexes.deployments,
                                       (self.namespace, self.name))), None)
        if live is None and self.created is not None:
            live = self.created  # our own create, not yet seen through the watch
        gpu_worker = dep.gpu_request(spec) is not None
        if live is None:
            initial = self.initial_replicas(spec)
            desired = dep.build_deployment(self.name, self.namespace, self.uid, spec,
                                           replicas=initial, gpu_surge=self.surge_ok(spec))
            try:
                created = await kc.create(kube.deployments_path(self.namespace), desired,
                                          operation="create_deployment")
            except kube.ApiError as exc:
                if exc.status != 409:
                    raise
                created = await kc.get(kube.deployments_path(self.namespace, self.name),
                                       operation="get_deployment") or {}
            self.created = kube_index.deployment_entry(
                created.get("metadata") or {}, created.get("spec") or {},
                created.get("status") or {})
            self.pending_replicas = (initial, time.monotonic())
            logger.info("created Deployment", extra={"qw": self.name, "replicas": initial})
            live = self.created
        if not dep.owned_by(live, self.uid):
            await self.invalid("DeploymentConflict",
                               f"Deployment {self.namespace}/{self.name} exists and is not "
                               "owned by this QueueWorker", self.body["metadata"].get("generation"))
            return None
        # GPU workers keep the strategy they have until the template changes (then
        # it follows the free GPUs of that moment), so it never flips with them.
        rolling = ((live.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
        gpu_surge = rolling.get("maxSurge", 1) != 0 if gpu_worker else True
        desired = self.desired(spec, gpu_surge)
        # kopf replaces an index entry when its object changes: the same entry and
        # the same wish need no second look.
        check_key = (live, desired["metadata"]["annotations"][dep.SPEC_HASH_ANNOTATION])
        if (self.checked is not None and self.checked[0] is live
                and self.checked[1] == check_key[1] and live is not self.created):
            return live
        differs = dep.drift(desired, live)
        seen = dep.spec_hash(dict(live.get("spec") or {}))
        if differs and seen == self.corrected_digest:
            # Our last patch already produced exactly this; what is left is the API
            # server's normalisation, not a hand edit: patching again would loop.
            differs = []
        if differs:
            if gpu_worker and "spec.template" in differs:
                desired = self.desired(spec, self.surge_ok(spec))
            patch = {
                "metadata": {"labels": desired["metadata"]["labels"],
                             "annotations": desired["metadata"]["annotations"]},
                "spec": {"template": desired["spec"]["template"],
                         "strategy": desired["spec"]["strategy"]},
            }
            hand_edit = "metadata.annotations" not in differs and (
                (live.get("metadata") or {}).get("annotations", {}).get(dep.SPEC_HASH_ANNOTATION)
                == desired["metadata"]["annotations"][dep.SPEC_HASH_ANNOTATION])
            patched = await kc.patch(kube.deployments_path(self.namespace, self.name), patch,
                                     operation="patch_deployment") or {}
            result = kube_index.deployment_entry(patched.get("metadata") or {},
                                                 patched.get("spec") or {}, {})
            self.corrected_digest = dep.spec_hash(result["spec"])
            if hand_edit:
                kopf.event(self.body, type="Warning", reason="DriftCorrected",
                           message=f"Deployment edited outside the QueueWorker "
                           f"({', '.join(differs)}); restored")
            logger.info("updated Deployment", extra={"qw": self.name, "parts": differs})
            self.created = None
        if self.created is not None and live is not self.created:
            self.created = None
        self.checked = None if differs else check_key
        return live

    def desired(self, spec: api.QueueWorkerSpec, gpu_surge: bool) -> dict[str, Any]:
        if self.desired_cache is None or self.desired_cache[0] != gpu_surge:
            self.desired_cache = (gpu_surge, dep.build_deployment(
                self.name, self.namespace, self.uid, spec, gpu_surge=gpu_surge))
        return self.desired_cache[1]

    def surge_ok(self, spec: api.QueueWorkerSpec) -> bool:
        """Whether a rollout's surge pod would find a free GPU right now."""
        gpu = self.gpu_capacity(spec, fresh=True)
        return gpu is None or gpu.free >= gpu.per_replica

    def initial_replicas(self, spec: api.QueueWorkerSpec) -> int:
        status = self.body.get("status") or {}
        if spec.scaling.paused and spec.replicas is not None:
            return spec.replicas
        previous = status.get("desiredReplicas")
        if isinstance(previous, int) and previous >= 0:
            return min(max(previous, spec.scaling.min_replicas), spec.scaling.max_replicas)
        return spec.scaling.min_replicas

    async def scale(self, decision: Decision, obs: Observation, pods: list[dict[str, Any]],
                    paused: bool) -> None:
        kc = self.shared.kube
        current = obs.current_replicas
        if decision.desired < current:
            await self.mark_victims(decision, obs, pods)
        await kc.patch(kube.deployments_path(self.namespace, self.name),
                       {"spec": {"replicas": decision.desired}}, operation="scale_deployment")
        self.pending_replicas = (decision.desired, time.monotonic())
        reason = scale_reason(decision, obs, paused)
        direction = "up" if decision.desired > current else "down"
        self.last_scale_time = st.now_iso()
        self.last_scale_reason = f"{reason}: {decision.reason}"[:300]
        metrics.scale_events.labels(**self.labels, direction=direction, reason=reason).inc()
        kopf.event(self.body, type="Normal",
                   reason="ScaledUp" if direction == "up" else "ScaledDown",
                   message=f"{current} -> {decision.desired} ({reason}): {decision.reason}"[:1000])
        logger.info("scaled", extra={"qw": self.name, "from": current,
                                     "to": decision.desired, "reason": decision.reason})

    async def mark_victims(self, decision: Decision, obs: Observation,
                           pods: list[dict[str, Any]]) -> None:
        """Lowest pod-deletion-cost on the pods to go; reset it on busy pods that kept it."""
        kc = self.shared.kube
        victims = set(decision.remove_first)
        busy = {p.name for p in obs.pods if p.busy}
        changed = 0
        for pod in pods:
            name = str(pod["name"])
            want: str | None
            if name in victims:
                want = IDLE_COST
            elif pod.get("cost") == IDLE_COST and name in busy:
                want = None
            else:
                continue
            if pod.get("cost") == want:
                continue
            annotations = {dep.DELETION_COST_ANNOTATION: want}
            try:
                await kc.patch(kube.pod_path(self.namespace, name),
                               {"metadata": {"annotations": annotations}},
                               operation="annotate_pod")
                changed += 1
            except kube.ApiError as exc:  # best effort: the scale-down still happens
                logger.warning("could not annotate pod", extra={"pod": name, "error": str(exc)})
        if changed:
            # The ReplicaSet controller picks victims from its informer cache.
            await asyncio.sleep(self.shared.config.deletion_cost_delay_seconds)

    # -------------------------------------------------------------------- reporting

    async def invalid(self, reason: str, message: str, generation: int | None) -> None:
        self.last_fingerprint = None
        self.m_spec_valid.set(0)
        now = st.now_iso()
        conds = st.set_condition(self.conditions, "SpecValid", "False", reason, message,
                                 generation=generation, now=now)
        conds = st.set_condition(conds, "Ready", "False", reason, message,
                                 generation=generation, now=now)
        self.conditions = conds
        if message != self.last_problem:
            self.last_problem = message
            kopf.event(self.body, type="Warning", reason=reason, message=message[:1000])
            logger.warning("unusable QueueWorker", extra={"qw": self.name, "reason": reason,
                                                          "problem": message})
        await self.write_status({"observedGeneration": generation, "conditions": conds},
                                force=False)

    async def report(self, spec: api.QueueWorkerSpec, obs: Observation, decision: Decision,
                     live: Mapping[str, Any], current: int, generation: int | None,
                     paused: bool, gpu: GPUCapacity | None) -> None:
        live_status = live.get("status") or {}
        ready = int(live_status.get("readyReplicas") or 0)
        pods_now = int(live_status.get("replicas") or 0)
        # An idle QueueWorker sees the same thing poll after poll: nothing to redo.
        fingerprint = (obs.queues, obs.error, decision.desired, decision.gpu_limited,
                       decision.gpu_shortfall, current, ready, pods_now, gpu, paused,
                       generation, self.last_scale_time, _shape(self.memory))
        if fingerprint == self.last_fingerprint:
            return
        now = st.now_iso()
        conds = st.set_condition(self.conditions, "SpecValid", "True", "Valid",
                                 "spec accepted", generation=generation, now=now)
        read_failed = (obs.error or "").startswith("QueueReadFailed")
        if obs.queues is None and not read_failed:
            conds = st.set_condition(conds, "RedisReachable", "False", "ConnectionFailed",
                                     obs.error or "queues not readable",
                                     generation=generation, now=now)
        else:
            conds = st.set_condition(conds, "RedisReachable", "True", "Connected",
                                     "queues read", generation=generation, now=now)
        if gpu is None:
            conds = st.set_condition(conds, "GPULimited", "False", "NoGPU",
                                     "workers request no GPU", generation=generation, now=now)
        elif decision.gpu_limited:
            conds = st.set_condition(
                conds, "GPULimited", "True", "InsufficientGPUs",
                f"free {gpu.resource_name}: {gpu.free}, {gpu.per_replica} per replica; "
                f"short by {decision.gpu_shortfall} replicas", generation=generation, now=now)
        else:
            conds = st.set_condition(conds, "GPULimited", "False", "Sufficient",
                                     f"free {gpu.resource_name}: {gpu.free}",
                                     generation=generation, now=now)
        if paused:
            conds = st.set_condition(conds, "Scaling", "False", "Paused",
                                     "autoscaling paused; spec.replicas decides",
                                     generation=generation, now=now)
        elif current != ready or pods_now != current:
            conds = st.set_condition(
                conds, "Scaling", "True", "ScalingUp" if current > ready else "ScalingDown",
                f"{ready} ready of {current}", generation=generation, now=now)
        else:
            conds = st.set_condition(conds, "Scaling", "False", "Stable",
                                     f"{ready} ready of {current}",
                                     generation=generation, now=now)
        if obs.queues is None:
            conds = st.set_condition(conds, "Ready", "False",
                                     "QueueReadFailed" if read_failed else "RedisUnreachable",
                                     obs.error or "", generation=generation, now=now)
        else:
            conds = st.set_condition(conds, "Ready", "True", "Reconciled",
                                     "Deployment reconciled and queues read",
                                     generation=generation, now=now)
        self.conditions = conds

        queues = obs.queues or ()
        backlog = sum(q.waiting + q.in_flight for q in queues)
        ages = [q.oldest_age_seconds for q in queues if q.oldest_age_seconds is not None]
        oldest = round(max(ages), 3) if ages else None
        body: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": pods_now,
            "desiredReplicas": decision.desired,
            "readyReplicas": ready,
            "selector": dep.selector_string(self.name),
            "gpuLimited": decision.gpu_limited,
            "lastScaleTime": self.last_scale_time,
            "lastScaleReason": self.last_scale_reason,
            "conditions": conds,
        }
        volatile: dict[str, Any] = {
            "engineMemory": self.memory,
        }
        if obs.queues is not None:
            volatile.update({
                "backlog": backlog,
                "oldestJobAgeSeconds": oldest,
                "queues": [{"name": q.name, "layout": q.layout, "waiting": q.waiting,
                            "inFlight": q.in_flight, "delayed": q.delayed,
                            "oldestAgeSeconds": q.oldest_age_seconds} for q in queues],
            })
        if gpu is not None:
            volatile["gpu"] = {
                "resourceName": gpu.resource_name, "perReplica": gpu.per_replica,
                "free": gpu.free, "needed": decision.desired * gpu.per_replica,
                "limitedBy": decision.gpu_shortfall,
            }
        self.export_metrics(obs, decision, pods_now, ready, gpu)
        await self.write_status(body, volatile=volatile,
                                force=bool(backlog) != bool(self.last_backlog))
        self.last_fingerprint = fingerprint  # only once written: a failed write retries

    def export_metrics(self, obs: Observation, decision: Decision, pods_now: int, ready: int,
                       gpu: GPUCapacity | None) -> None:
        m, labels = metrics, self.labels
        self.m_desired.set(decision.desired)
        self.m_current.set(pods_now)
        self.m_ready.set(ready)
        self.m_gpu_limited.set(1 if decision.gpu_limited else 0)
        for q in obs.queues or ():
            for state, value in (("waiting", q.waiting), ("in_flight", q.in_flight),
                                 ("delayed", q.delayed)):
                m.queue_jobs.labels(**labels, queue=q.name, state=state).set(value)
            if q.oldest_age_seconds is not None:
                m.queue_oldest_age.labels(**labels, queue=q.name).set(q.oldest_age_seconds)
            else:
                m.queue_oldest_age.labels(**labels, queue=q.name).set(0)
        if gpu is not None:
            m.gpu_free.labels(**labels, resource=gpu.resource_name).set(gpu.free)
            m.gpu_needed.labels(**labels, resource=gpu.resource_name).set(
                decision.desired * gpu.per_replica)

    async def write_status(self, important: dict[str, Any], *,
                           volatile: dict[str, Any] | None = None, force: bool = False) -> None:
        """Write when something a person acts on changed; volatile numbers at most
        every status_refresh_seconds, and only when they changed (an idle
        QueueWorker writes nothing)."""
        comparable = {**important, "conditions": st.comparable(important.get("conditions", []))}
        volatile_changed = volatile is not None and (
            _shape(volatile) != _shape(self.last_volatile))
        due = volatile_changed and (
            time.monotonic() - self.last_written_at >= self.shared.config.status_refresh_seconds)
        if self.last_written == comparable and not force and not due:
            return
        payload = {**important, **(volatile or {})}
        await self.shared.kube.patch(kube.queueworker_status_path(self.namespace, self.name),
                                     {"status": payload}, operation="patch_status")
        self.last_written = comparable
        self.last_volatile = volatile
        self.last_backlog = int((volatile or {}).get("backlog") or 0)
        self.last_written_at = time.monotonic()

