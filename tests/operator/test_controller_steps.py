"""The pure pieces of a tick's steps: pending replicas (observe), victim marks (act),
conditions and the status shape (report)."""

from __future__ import annotations

from typing import Any

from queueworker.engine.types import Decision, GPUCapacity, Observation, QueueDepth
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.cluster import status as st
from queueworker.operator.controller import act, observe, report


def test_our_scale_patch_is_trusted_until_the_index_shows_it() -> None:
    live = {"spec": {"replicas": 2}}
    assert observe.current_replicas(live, None, 100.0) == (2, None)
    # We patched 5 at t=100; the index still says 2.
    assert observe.current_replicas(live, (5, 100.0), 110.0) == (5, (5, 100.0))
    # The index caught up: the pending value is dropped.
    assert observe.current_replicas({"spec": {"replicas": 5}}, (5, 100.0), 111.0) == (5, None)
    # It never did: after a while the index wins.
    late = 100.0 + observe.PENDING_REPLICAS_SECONDS + 1
    assert observe.current_replicas(live, (5, 100.0), late) == (2, None)


def test_victims_get_the_lowest_cost_and_busy_pods_lose_it() -> None:
    pods: list[dict[str, Any]] = [{"name": "a", "cost": None}, {"name": "b", "cost": act.IDLE_COST},
            {"name": "c", "cost": act.IDLE_COST}, {"name": "d", "cost": None}]
    changes = act.cost_changes(victims={"a", "c"}, busy={"b", "d"}, pods=pods)
    # a: new victim; b: busy and still marked from before; c: already marked; d: untouched.
    assert changes == {"a": act.IDLE_COST, "b": None}


def _decision(desired: int, gpu_limited: bool = False) -> Decision:
    return Decision(desired=desired, reason="r", direction="up", gpu_limited=gpu_limited,
                    gpu_shortfall=2 if gpu_limited else 0)


def test_conditions_of_a_gpu_limited_scale_up() -> None:
    queues = (QueueDepth(name="jobs", layout="native", waiting=7, in_flight=1, delayed=0,
                         oldest_age_seconds=3.25),)
    obs = Observation(now=1.0e9 + 5, queues=queues, current_replicas=1, ready_replicas=1,
                      pods=(), gpu=None, error=None, manual_replicas=None)
    gpu = GPUCapacity(resource_name="nvidia.com/gpu", per_replica=1, max_replicas=1, free=0)
    seen = report.Seen.of(obs, _decision(3, gpu_limited=True),
                          {"status": {"readyReplicas": 1, "replicas": 1}}, current=3, gpu=gpu,
                          paused=False, generation=4)
    conds = {c["type"]: c for c in report.conditions(st.with_all_types([]), seen, "now")}
    assert (conds["GPULimited"]["status"], conds["GPULimited"]["reason"]) == (
        "True", "InsufficientGPUs")
    assert (conds["Scaling"]["status"], conds["Scaling"]["reason"]) == ("True", "ScalingUp")
    assert conds["Ready"]["reason"] == "Reconciled"
    assert all(c["observedGeneration"] == 4 for c in conds.values())
    volatile = report.volatile_status(seen)
    assert volatile["backlog"] == 8
    assert volatile["oldestJobAgeSeconds"] == 3.25
    assert volatile["gpu"] == {"resourceName": "nvidia.com/gpu", "perReplica": 1, "free": 0,
                               "needed": 3, "limitedBy": 2}
    # Timestamps in the engine memory alone are not worth a write, nor a ring of
    # samples gaining and dropping one of the same value; a new value is.
    assert report.memory_key({"up": [1.0e9 + 5]}) == report.memory_key({"up": [1.0e9 + 9]})
    ring = [[1.5e9 + 5 * i, 7.0] for i in range(8)]
    assert report.memory_key({"arr": ring}) == report.memory_key({"arr": ring[1:]})
    assert report.memory_key({"arr": ring}) != report.memory_key({"arr": [*ring, [2e9, 8.0]]})


def test_an_unreadable_queue_is_not_an_unreachable_redis() -> None:
    obs = Observation(now=1.0, queues=None, current_replicas=1, ready_replicas=1, pods=(),
                      gpu=None, error="QueueReadFailed: jobs: WRONGTYPE", manual_replicas=None)
    seen = report.Seen.of(obs, _decision(1), {"status": {"readyReplicas": 1, "replicas": 1}},
                          current=1, gpu=None, paused=False, generation=1)
    conds = {c["type"]: c for c in report.conditions(st.with_all_types([]), seen, "now")}
    assert conds["RedisReachable"]["status"] == "True"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "QueueReadFailed")
    assert report.scale_reason(_decision(2), obs, paused=False) == "Fallback"


def test_pods_the_cluster_refuses_make_ready_false() -> None:
    # The Deployment controller copies the ReplicaSet's ReplicaFailure (Pod Security
    # Admission, a quota) into the Deployment; the index keeps it, the report says it.
    obs = Observation(now=1.0, queues=(), current_replicas=1, ready_replicas=0, pods=(),
                      gpu=None, error=None, manual_replicas=None)
    message = 'pods "w-1" is forbidden: violates PodSecurity "restricted:latest"'
    live = kube_index.deployment_entry({"name": "w"}, {"replicas": 1}, {"conditions": [
        {"type": "Progressing", "status": "True"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": message}]})
    seen = report.Seen.of(obs, _decision(1), live, current=1, gpu=None, paused=False,
                          generation=1)
    conds = {c["type"]: c for c in report.conditions(st.with_all_types([]), seen, "now")}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "PodsRefused")
    assert conds["Ready"]["message"] == message
    cleared = kube_index.deployment_entry({"name": "w"}, {"replicas": 1}, {"conditions": [
        {"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate"}]})
    seen = report.Seen.of(obs, _decision(1), cleared, current=1, gpu=None, paused=False,
                          generation=1)
    assert seen.pods_refused is None
