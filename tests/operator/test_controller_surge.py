"""A GPU rollout that surged on a GPU that was not free stops surging (controller/reconcile.py).

Pure: the live Deployment and the pods are index entries (cluster/index.py);
the harness test of the same rule is in test_harness_gpu_rollout.py.
"""

from __future__ import annotations

from typing import Any

from queueworker.operator import api
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller import reconcile
from queueworker.operator.validation import parse_spec

from support.operator_specs import spec as make_spec

GPU = "nvidia.com/gpu"
UID = "uid-1"
NO_GPU = f"0/2 nodes are available: 2 Insufficient {GPU}."
SURGE = {"maxSurge": 1, "maxUnavailable": 0}
NO_SURGE = {"maxSurge": 0, "maxUnavailable": 1}


def gpu_spec(image: str = "example.org/gpu-worker:1") -> api.QueueWorkerSpec:
    return parse_spec(make_spec("redis://localhost:6379/0", template={"spec": {"containers": [
        {"name": "worker", "image": image, "resources": {"limits": {GPU: "1"}}}]}}))


def desired(spec: api.QueueWorkerSpec) -> reconcile.Desired:
    return reconcile.Desired("w", "ns", UID, spec)


def live(spec: api.QueueWorkerSpec, *, surge: bool, replicas: int, updated: int
         ) -> dict[str, Any]:
    """The Deployment as the index keeps it, mid-rollout when ``updated < replicas``."""
    plan = reconcile.plan(desired(spec), None, reconcile.Memory(), status={}, surge_ok=surge)
    assert isinstance(plan, reconcile.Create)
    body = plan.body
    return kube_index.deployment_entry(body["metadata"], body["spec"], {
        "replicas": replicas, "readyReplicas": replicas - 1, "updatedReplicas": updated})


def pod(name: str, *, node: str | None = None, message: str | None = None,
        terminating: bool = False) -> dict[str, Any]:
    """A pod index entry: bound to ``node``, or Pending and (``message`` not None)
    turned away by the scheduler."""
    conditions = [] if message is None else [{"type": "PodScheduled", "status": "False",
                                               "reason": "Unschedulable", "message": message}]
    meta: dict[str, Any] = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if terminating else {}
    return kube_index.pod_entry(name, meta, {"nodeName": node} if node else {},
                                {"phase": "Running" if node else "Pending",
                                 "conditions": conditions})


def test_the_index_keeps_the_schedulers_word() -> None:
    assert pod("a", message=NO_GPU)["unschedulable"] == NO_GPU
    assert pod("b", message="")["unschedulable"] == ""
    assert pod("c", node="gpu-a")["unschedulable"] is None
    assert pod("d")["unschedulable"] is None  # not tried yet: no verdict


def test_a_rollout_stuck_on_a_gpu_is_blocked_and_nothing_else_is() -> None:
    spec = gpu_spec()
    rolling = live(spec, surge=True, replicas=3, updated=1)
    old = [pod("old-1", node="gpu-a"), pod("old-2", node="gpu-a")]
    why = reconcile.surge_blocked(rolling, [*old, pod("new-1", message=NO_GPU)], GPU)
    assert why is not None
    assert "new-1" in why
    assert GPU in why
    # The harness (and a scheduler that says nothing) gives no message: still blocked.
    assert reconcile.surge_blocked(rolling, [*old, pod("new-1", message="")], GPU)
    # Turned away for something a free GPU would not fix: letting an old pod go won't help.
    other = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity."
    assert reconcile.surge_blocked(rolling, [*old, pod("new-1", message=other)], GPU) is None
    # Not tried yet, or already leaving: no verdict.
    assert reconcile.surge_blocked(rolling, [*old, pod("new-1")], GPU) is None
    assert reconcile.surge_blocked(
        rolling, [*old, pod("new-1", message=NO_GPU, terminating=True)], GPU) is None
    # No rollout (every pod has the new template): a Pending pod is a scale-up's.
    done = live(spec, surge=True, replicas=3, updated=3)
    assert reconcile.surge_blocked(done, [*old, pod("new-1", message=NO_GPU)], GPU) is None


def test_a_blocked_surge_is_patched_to_no_surge_once() -> None:
    spec = gpu_spec()
    rolling = live(spec, surge=True, replicas=3, updated=1)
    stuck = [pod("old-1", node="gpu-a"), pod("old-2", node="gpu-a"),
             pod("new-1", message=NO_GPU)]
    memory = reconcile.Memory()
    # Without the pods the plan sees nothing to do (the strategy stays until a template change).
    assert isinstance(reconcile.plan(desired(spec), rolling, memory, status={}),
                      reconcile.InSync)
    plan = reconcile.plan(desired(spec), rolling, memory, status={}, pods=stuck)
    assert isinstance(plan, reconcile.Patch)
    assert plan.parts == ("spec.strategy",)
    assert plan.body["spec"]["strategy"]["rollingUpdate"] == NO_SURGE
    assert not plan.hand_edit, "our own decision, not a hand edit"
    assert plan.no_surge is not None
    assert "new-1" in plan.no_surge
    # The API server's answer; the index still shows the old strategy for a while.
    memory.patched(live(spec, surge=False, replicas=3, updated=1))
    again = reconcile.plan(desired(spec), rolling, memory, status={}, pods=stuck)
    assert isinstance(again, reconcile.InSync), "patched twice before the index caught up"
    # Once it did: in line, and it stays so when the rollout is done.
    caught_up = live(spec, surge=False, replicas=3, updated=1)
    assert isinstance(reconcile.plan(desired(spec), caught_up, memory, status={}, pods=stuck),
                      reconcile.InSync)


def test_a_new_template_on_a_blocked_rollout_does_not_surge() -> None:
    spec = gpu_spec()
    rolling = live(spec, surge=True, replicas=3, updated=1)
    stuck = [pod("old-1", node="gpu-a"), pod("new-1", message=NO_GPU)]
    newer = desired(gpu_spec("example.org/gpu-worker:3"))
    # The GPU accounting saw a free GPU (it lags too); the scheduler says otherwise.
    plan = reconcile.plan(newer, rolling, reconcile.Memory(), status={}, surge_ok=True,
                          pods=stuck)
    assert isinstance(plan, reconcile.Patch)
    assert "spec.template" in plan.parts
    assert plan.body["spec"]["strategy"]["rollingUpdate"] == NO_SURGE


def test_a_no_surge_rollout_and_a_cpu_worker_are_left_alone() -> None:
    spec = gpu_spec()
    calm = live(spec, surge=False, replicas=3, updated=1)
    stuck = [pod("old-1", node="gpu-a"), pod("new-1", message=NO_GPU)]
    assert isinstance(reconcile.plan(desired(spec), calm, reconcile.Memory(), status={},
                                     pods=stuck), reconcile.InSync)
    cpu = parse_spec(make_spec("redis://localhost:6379/0"))
    plan = reconcile.plan(desired(cpu), None, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Create)
    body = plan.body
    entry = kube_index.deployment_entry(body["metadata"], body["spec"], {
        "replicas": 3, "updatedReplicas": 1})
    assert isinstance(reconcile.plan(desired(cpu), entry, reconcile.Memory(), status={},
                                     pods=[pod("new-1", message="")]), reconcile.InSync)
