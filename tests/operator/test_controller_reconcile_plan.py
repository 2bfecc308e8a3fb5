"""The pure Deployment plan (controller/reconcile.py): Create / Patch / Conflict / InSync.

No cluster: the live Deployment is the index entry (cluster/index.py) of a
body the plan itself produced, edited the way a person or the API server would.
"""

from __future__ import annotations

import copy
from typing import Any

from queueworker.operator import api
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller import reconcile
from queueworker.operator.validation import parse_spec

from support.operator_specs import spec as make_spec

UID = "uid-1"
GPU_TEMPLATE = {"spec": {"containers": [{
    "name": "worker", "image": "example.org/gpu-worker:1",
    "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "500m", "memory": "1024Mi"}}}]}}


def qw_spec(image: str = "example.org/worker:1", gpu: bool = False,
            **scaling: Any) -> api.QueueWorkerSpec:
    template = copy.deepcopy(GPU_TEMPLATE) if gpu else {"spec": {"containers": [{
        "name": "worker", "image": image, "resources": {"limits": {"cpu": "500m"}}}]}}
    template["spec"]["containers"][0]["image"] = image
    return parse_spec(make_spec("redis://localhost:6379/0", template=template, **scaling))


def desired(spec: api.QueueWorkerSpec) -> reconcile.Desired:
    return reconcile.Desired("w", "ns", UID, spec)


def entry(body: dict[str, Any]) -> dict[str, Any]:
    """The Deployment as the kopf index keeps it."""
    return kube_index.deployment_entry(body["metadata"], body["spec"], body.get("status") or {})


def created(spec: api.QueueWorkerSpec, surge_ok: bool | None = None) -> dict[str, Any]:
    plan = reconcile.plan(desired(spec), None, reconcile.Memory(), status={},
                          surge_ok=surge_ok)
    assert isinstance(plan, reconcile.Create)
    return entry(plan.body)


def test_no_deployment_plans_a_create_with_initial_replicas() -> None:
    spec = qw_spec(minReplicas=2, maxReplicas=6)
    plan = reconcile.plan(desired(spec), None, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Create)
    assert plan.replicas == 2
    assert plan.body["spec"]["replicas"] == 2
    assert plan.body["metadata"]["ownerReferences"][0]["uid"] == UID
    assert plan.body["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    # An operator restart or a recreated Deployment starts from the last desired count.
    again = reconcile.plan(desired(spec), None, reconcile.Memory(),
                           status={"desiredReplicas": 9})
    assert isinstance(again, reconcile.Create)
    assert again.replicas == 6
    paused = qw_spec(paused=True)
    paused = paused.model_copy(update={"replicas": 4})
    assert reconcile.initial_replicas(paused, {"desiredReplicas": 1}) == 4


def test_gpu_create_asks_for_free_gpus_then_follows_them() -> None:
    spec = qw_spec(gpu=True)
    assert isinstance(reconcile.plan(desired(spec), None, reconcile.Memory(), status={}),
                      reconcile.NeedFreeGPUs)
    full = reconcile.plan(desired(spec), None, reconcile.Memory(), status={}, surge_ok=False)
    assert isinstance(full, reconcile.Create)
    assert full.body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0,
                                                               "maxUnavailable": 1}


def test_a_deployment_owned_by_someone_else_is_a_conflict() -> None:
    live = created(qw_spec())
    live["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    plan = reconcile.plan(desired(qw_spec()), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Conflict)
    assert "ns/w exists and is not owned" in plan.message


def test_api_server_defaults_and_normalised_quantities_are_not_drift() -> None:
    spec = qw_spec()
    live = created(spec)
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicy"] = "IfNotPresent"
    container["terminationMessagePath"] = "/dev/termination-log"
    container["resources"]["limits"]["cpu"] = "0.5"  # "500m" as the API server may write it
    live["spec"]["progressDeadlineSeconds"] = 600
    plan = reconcile.plan(desired(spec), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.InSync)
    assert plan.check[0] is live


def test_a_hand_edit_is_patched_back_and_called_one() -> None:
    spec = qw_spec()
    live = created(spec)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil.example/other:1"
    plan = reconcile.plan(desired(spec), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Patch)
    assert plan.parts == ("spec.template",)
    assert plan.hand_edit
    restored = plan.body["spec"]["template"]["spec"]["containers"][0]["image"]
    assert restored == "example.org/worker:1"
    # A server-side apply body: the whole object as we own it, named, never replicas.
    assert set(plan.body) == {"apiVersion", "kind", "metadata", "spec"}
    assert plan.body["metadata"]["name"] == "w"
    assert set(plan.body["spec"]) == {"selector", "template", "strategy",
                                      "revisionHistoryLimit"}
    assert "replicas" not in plan.body["spec"]  # replicas are the autoscaler's


def test_a_field_removed_from_the_template_is_absent_from_the_apply_body() -> None:
    # A merge patch would have to name a removed key (null) to drop it; an apply body
    # is the whole intent, so leaving the field out is what removes it.
    template = {"spec": {"containers": [{
        "name": "worker", "image": "example.org/worker:1", "resources": {"limits": {"cpu": "500m"}},
        "env": [{"name": "EXTRA", "value": "1"}]}]}}
    live = created(parse_spec(make_spec("redis://localhost:6379/0", template=template)))
    plan = reconcile.plan(desired(qw_spec()), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Patch)
    env = plan.body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "EXTRA" not in {e["name"] for e in env}
    assert "EXTRA" in {e["name"] for e in
                       live["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_a_spec_change_is_patched_and_not_called_a_hand_edit() -> None:
    live = created(qw_spec())
    plan = reconcile.plan(desired(qw_spec(image="example.org/worker:2")), live,
                          reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Patch)
    assert plan.parts == ("spec.template",)
    assert not plan.hand_edit
    want_hash = dep.spec_hash(dict(desired(qw_spec(image="example.org/worker:2"))
                                   .body(True)["spec"]))
    assert plan.body["metadata"]["annotations"][dep.SPEC_HASH_ANNOTATION] == want_hash


def test_a_lost_hash_annotation_alone_is_drift() -> None:
    spec = qw_spec()
    live = created(spec)
    live["metadata"]["annotations"].pop(dep.SPEC_HASH_ANNOTATION)
    plan = reconcile.plan(desired(spec), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Patch)
    assert plan.parts == ("metadata.annotations",)
    assert not plan.hand_edit


def test_a_changed_strategy_or_selector_is_drift() -> None:
    spec = qw_spec()
    live = created(spec)
    live["spec"]["strategy"] = {"type": "Recreate"}
    live["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    plan = reconcile.plan(desired(spec), live, reconcile.Memory(), status={})
    assert isinstance(plan, reconcile.Patch)
    assert plan.parts == ("spec.strategy", "spec.selector")
    assert plan.hand_edit


def test_what_our_own_patch_produced_is_not_patched_again() -> None:
    spec = qw_spec()
    memory = reconcile.Memory()
    # The API server answered our patch with a spec that still differs (its own
    # normalisation); the next plan must not patch it again, forever.
    normalised = created(spec)
    normalised["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = (
        "0.5001")
    memory.patched(normalised)
    assert isinstance(reconcile.plan(desired(spec), normalised, memory, status={}),
                      reconcile.InSync)
    # Anything else that differs is still drift.
    edited = copy.deepcopy(normalised)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "evil.example/other:1"
    assert isinstance(reconcile.plan(desired(spec), edited, memory, status={}),
                      reconcile.Patch)


def test_the_same_entry_in_line_with_the_same_wish_is_not_compared_again() -> None:
    spec = qw_spec()
    live = created(spec)
    memory = reconcile.Memory()
    plan = reconcile.plan(desired(spec), live, memory, status={})
    assert isinstance(plan, reconcile.InSync)
    memory.settle(live, plan)
    assert memory.checked is not None
    assert memory.checked[0] is live
    # kopf replaces an entry when its object changes: a new entry is compared again.
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "evil.example/other:1"
    assert isinstance(reconcile.plan(desired(spec), edited, memory, status={}),
                      reconcile.Patch)
    # A new wish for the same entry is compared again too.
    assert isinstance(reconcile.plan(desired(qw_spec(image="example.org/worker:3")), live,
                                     memory, status={}), reconcile.Patch)
    # After a patch, nothing counts as checked.
    patch = reconcile.plan(desired(spec), edited, memory, status={})
    memory.settle(edited, patch)
    assert memory.checked is None


def test_our_own_create_stands_in_until_the_watch_shows_the_deployment() -> None:
    spec = qw_spec()
    memory = reconcile.Memory()
    mine = created(spec)
    memory.was_created(mine)
    assert memory.live([]) is mine
    seen = copy.deepcopy(mine)
    assert memory.live([seen]) is seen
    plan = reconcile.plan(desired(spec), seen, memory, status={})
    memory.settle(seen, plan)
    assert memory.created is None


def test_a_foreign_deployment_met_by_our_create_is_not_remembered() -> None:
    # Our create answered 409: someone else's Deployment. Once it is deleted, the
    # next plan must create ours again, not see the remembered foreign one.
    memory = reconcile.Memory()
    memory.desired("w", "ns", UID, qw_spec())
    foreign = entry({"metadata": {"name": "w"}, "spec": {"replicas": 0}})
    memory.was_created(foreign)
    assert memory.live([]) is None


def test_gpu_workers_keep_their_strategy_until_the_template_changes() -> None:
    spec = qw_spec(gpu=True)
    live = created(spec, surge_ok=False)  # created while every GPU was taken
    # GPUs free up: no template change, so no flip of the strategy (no NeedFreeGPUs).
    assert isinstance(reconcile.plan(desired(spec), live, reconcile.Memory(), status={},
                                     surge_ok=True), reconcile.InSync)
    assert isinstance(reconcile.plan(desired(spec), live, reconcile.Memory(), status={}),
                      reconcile.InSync)
    # A template change rolls the pods: the strategy follows the GPUs free now.
    new = desired(qw_spec(image="example.org/gpu-worker:2", gpu=True))
    assert isinstance(reconcile.plan(new, live, reconcile.Memory(), status={}),
                      reconcile.NeedFreeGPUs)
    plan = reconcile.plan(new, live, reconcile.Memory(), status={}, surge_ok=True)
    assert isinstance(plan, reconcile.Patch)
    assert plan.body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1,
                                                              "maxUnavailable": 0}
    full = reconcile.plan(new, live, reconcile.Memory(), status={}, surge_ok=False)
    assert isinstance(full, reconcile.Patch)
    assert full.body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0,
                                                              "maxUnavailable": 1}
