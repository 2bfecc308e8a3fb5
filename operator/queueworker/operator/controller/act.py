"""The writes a tick makes to the cluster: apply a Deployment plan, scale, mark victims.

Each function does its write(s) and returns what the loop needs to remember
(the Deployment as the index would keep it, the marks written); none calls back
into the loop, and the only thing read is the pod index a scale-down is handed,
to see its own marks (``await_marks``). Events and status are report.py's.
``quiet_first`` is the one write to Redis: Sidekiq's quiet signal to the
victims of a scale-down (engine/quiet.py decides).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
import redis.asyncio

from queueworker.common.log import log_event
from queueworker.engine import quiet
from queueworker.engine.types import Decision, PodState
from queueworker.observe import busy as busy_reg
from queueworker.observe.busy import quiet as busy_quiet
from queueworker.operator import api
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller import reconcile
from queueworker.operator.controller.observe import Observed

logger = logging.getLogger(__name__)

IDLE_COST = "-100"  # pod-deletion-cost of idle pods chosen to go first (default is 0)
MARK_POLL_SECONDS = 0.05  # how often await_marks looks at the pod index
Marks = dict[str, str | None]  # pod name -> pod-deletion-cost written (None: removed)
PodView = Callable[[], Iterable[Mapping[str, Any]]]  # the QueueWorker's pod index entries


def _entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    return kube_index.deployment_entry(doc.get("metadata") or {}, doc.get("spec") or {},
                                       doc.get("status") or {})


# Field managers of the server-side applies (reconcile.apply_body says why apply).
FIELD_MANAGER = "queueworker"
REPLICAS_MANAGER = "queueworker-replicas"


async def create_deployment(kc: kube.KubeClient, namespace: str, name: str,
                            plan: reconcile.Create) -> dict[str, Any]:
    """Create the Deployment by server-side apply; if one of that name appeared
    meanwhile, return that one (the next plan then tells ours from someone else's by
    its owner).

    Created by apply, not POST: a POST makes its fields owned by an update manager
    for good, and later applies could never remove them. No force here, so an
    object someone else made meanwhile answers 409 instead of being taken over."""
    path = kube.deployments_path(namespace, name)
    try:
        created = await kc.apply(path, plan.body, operation="create_deployment",
                                 field_manager=FIELD_MANAGER, force=False)
    except kube.ApiError as exc:
        if exc.status != 409:
            raise
        created = await kc.get(path, operation="get_deployment") or {}
    else:
        # The create's apply owns spec.replicas, and our later applies leave it out,
        # which would reset it to 1. A second manager applying the same count shares
        # it, so it stays until the autoscaler's first scale takes it over.
        await kc.apply(path, replicas_body(name, plan.replicas), operation="scale_deployment",
                       field_manager=REPLICAS_MANAGER, force=True)
    log_event(logger, "deployment.created", qw=name, replicas=plan.replicas)
    return _entry(created)


def replicas_body(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas}}


async def patch_deployment(kc: kube.KubeClient, namespace: str, name: str,
                           plan: reconcile.Patch) -> dict[str, Any]:
    """Restore the drifted parts by server-side apply with force (a controller
    takes back the fields it owns); the Deployment as the API server returned it."""
    patched = await kc.apply(kube.deployments_path(namespace, name), plan.body,
                             operation="patch_deployment", field_manager=FIELD_MANAGER,
                             force=True)
    log_event(logger, "deployment.updated", qw=name, parts=",".join(plan.parts))
    return kube_index.deployment_entry(patched.get("metadata") or {},
                                       patched.get("spec") or {}, {})


async def scale(kc: kube.KubeClient, namespace: str, name: str, decision: Decision,
                current: int, pod_states: Iterable[PodState], pods: list[dict[str, Any]], *,
                seen: PodView, margin: float, wait_limit: float) -> None:
    """Set the Deployment's replicas; before a scale-down, mark the engine's victims
    and wait until the marks can be seen (``await_marks``)."""
    if decision.desired < current:
        busy = {p.name for p in pod_states if p.busy}
        marks = await mark_victims(kc, namespace, set(decision.remove_first), busy, pods)
        if marks:
            await await_marks(marks, seen, margin=margin, limit=wait_limit, qw=name)
    await kc.patch(kube.deployments_path(namespace, name),
                   {"spec": {"replicas": decision.desired}}, operation="scale_deployment")


def cost_changes(victims: set[str], busy: set[str], pods: Iterable[Mapping[str, Any]]
                 ) -> dict[str, str | None]:
    """pod name -> the pod-deletion-cost it should get (None: remove the annotation).

    The lowest cost on the pods to go; a busy pod that kept it from an earlier
    scale-down gets it back off, so it is not taken before an idle one."""
    out: dict[str, str | None] = {}
    for pod in pods:
        name, cost = str(pod["name"]), pod.get("cost")
        want: str | None
        if name in victims:
            want = IDLE_COST
        elif cost == IDLE_COST and name in busy:
            want = None
        else:
            continue
        if cost != want:
            out[name] = want
    return out


async def mark_victims(kc: kube.KubeClient, namespace: str, victims: set[str], busy: set[str],
                       pods: Iterable[Mapping[str, Any]]) -> Marks:
    """Write the ``cost_changes``; the ones written (best effort)."""
    written: Marks = {}
    for name, want in cost_changes(victims, busy, pods).items():
        try:
            await kc.patch(kube.pod_path(namespace, name),
                           {"metadata": {"annotations": {dep.DELETION_COST_ANNOTATION: want}}},
                           operation="annotate_pod")
            written[name] = want
        except kube.ApiError as exc:  # best effort: the scale-down still happens
            log_event(logger, "pod.annotate_failed", logging.WARNING, pod=name, error=str(exc))
    return written


def marks_visible(marks: Marks, entries: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the pod index entries show every mark written (a pod gone from the
    index has nothing left to show: the ReplicaSet will not pick it either)."""
    costs = {str(e.get("name")): e.get("cost") for e in entries}
    return all(costs.get(name, want) == want for name, want in marks.items())


async def await_marks(marks: Marks, seen: PodView, *, margin: float, limit: float,
                      qw: str) -> bool:
    """Wait until our own pod index shows ``marks``, then ``margin`` more; False when
    ``limit`` seconds passed first (logged; the scale-down goes ahead anyway).

    The ReplicaSet controller picks its victims from its informer cache of pods.
    Our index is fed by a watch of the same pods from the same API server, so once
    it shows the marks, the controller's cache shows them too, give or take the
    skew between two watch streams: ``margin`` covers that skew. A fixed sleep
    instead held only while the controller's cache lagged less than the sleep."""
    started = time.monotonic()
    while not marks_visible(marks, seen()):
        waited = time.monotonic() - started
        if waited >= limit:
            log_event(logger, "pod.deletion_cost_unseen", logging.WARNING, qw=qw,
                      pods=",".join(sorted(marks)), waited_seconds=round(waited, 2))
            return False
        await asyncio.sleep(MARK_POLL_SECONDS)
    await asyncio.sleep(margin)
    return True


QuietMemory = quiet.Memory  # what a loop keeps for quiet_first


async def quiet_first(memory: QuietMemory, client: redis.asyncio.Redis,
                      spec: api.QueueWorkerSpec, seen: Observed, decision: Decision
                      ) -> Decision:
    """The engine's ``decision`` with a scale-down held until its victims are quiet
    and idle, for libraries that can be quieted (Sidekiq; engine/quiet.py decides,
    observe/busy/quiet.py gives the commands).

    Sends the quiet to new victims; returns the decision with the replicas to set
    now and only the pods ready to go as ``remove_first`` (act.scale marks them).
    ``memory`` is the loop's, updated in place. Unchanged when no queue's library
    can be quieted or scaling is paused."""
    step = None if spec.scaling.paused else busy_quiet.step(
        spec.queues, seen.reading.busy, busy_reg.pod_refs(seen.pods),
        [str(e["name"]) for e in seen.pods if not e.get("terminating")], decision,
        seen.obs.current_replicas, memory, time.time())
    if step is None:
        _keep(memory, QuietMemory())
        return decision
    sent: list[str] = []
    if step.commands:
        pipe = client.pipeline(transaction=False)
        for cmd in (c for cs in step.commands.values() for c in cs):
            pipe.execute_command(*cmd.args)
        try:
            replies = await asyncio.wait_for(pipe.execute(raise_on_error=False),
                                             spec.scaling.poll_interval_seconds)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            replies = [exc]
        sent = busy_quiet.sent(step, replies)
    _keep(memory, busy_quiet.remember(step, sent))
    return busy_quiet.outcome(decision, step, sent)


def _keep(memory: QuietMemory, new: QuietMemory) -> None:
    for mine, theirs in ((memory.quieted, new.quieted), (memory.released, new.released)):
        mine.clear()
        mine.update(theirs)
