"""The writes a tick makes to the cluster: apply a Deployment plan, scale, mark victims.

Each function does its write(s) and returns what the loop needs to remember
(the Deployment as the index would keep it, how many pods were marked); none
reads the world or calls back into the loop. Events and status are report.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from queueworker.common.log import log_event
from queueworker.engine.types import Decision, PodState
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller import reconcile

logger = logging.getLogger(__name__)

IDLE_COST = "-100"  # pod-deletion-cost of idle pods chosen to go first (default is 0)


def _entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    return kube_index.deployment_entry(doc.get("metadata") or {}, doc.get("spec") or {},
                                       doc.get("status") or {})


async def create_deployment(kc: kube.KubeClient, namespace: str, name: str,
                            plan: reconcile.Create) -> dict[str, Any]:
    """Create the Deployment; if one of that name appeared meanwhile, return that one
    (the next plan then tells ours from someone else's by its owner)."""
    try:
        created = await kc.create(kube.deployments_path(namespace), plan.body,
                                  operation="create_deployment")
    except kube.ApiError as exc:
        if exc.status != 409:
            raise
        created = await kc.get(kube.deployments_path(namespace, name),
                               operation="get_deployment") or {}
    log_event(logger, "deployment.created", qw=name, replicas=plan.replicas)
    return _entry(created)


async def patch_deployment(kc: kube.KubeClient, namespace: str, name: str,
                           plan: reconcile.Patch) -> dict[str, Any]:
    """Restore the drifted parts; the Deployment as the API server returned it."""
    patched = await kc.patch(kube.deployments_path(namespace, name), plan.body,
                             operation="patch_deployment") or {}
    log_event(logger, "deployment.updated", qw=name, parts=",".join(plan.parts))
    return kube_index.deployment_entry(patched.get("metadata") or {},
                                       patched.get("spec") or {}, {})


async def scale(kc: kube.KubeClient, namespace: str, name: str, decision: Decision,
                current: int, pod_states: Iterable[PodState], pods: list[dict[str, Any]], *,
                deletion_cost_delay: float) -> None:
    """Set the Deployment's replicas; before a scale-down, mark the engine's victims."""
    if decision.desired < current:
        busy = {p.name for p in pod_states if p.busy}
        changed = await mark_victims(kc, namespace, set(decision.remove_first), busy, pods)
        if changed:
            # The ReplicaSet controller picks victims from its informer cache.
            await asyncio.sleep(deletion_cost_delay)
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
                       pods: Iterable[Mapping[str, Any]]) -> int:
    """Write the ``cost_changes``; how many pods were changed (best effort)."""
    changed = 0
    for name, want in cost_changes(victims, busy, pods).items():
        try:
            await kc.patch(kube.pod_path(namespace, name),
                           {"metadata": {"annotations": {dep.DELETION_COST_ANNOTATION: want}}},
                           operation="annotate_pod")
            changed += 1
        except kube.ApiError as exc:  # best effort: the scale-down still happens
            log_event(logger, "pod.annotate_failed", logging.WARNING, pod=name, error=str(exc))
    return changed
