"""Step 3 of a tick, the plan: what to do to the Deployment, from the spec and the live one.

``plan`` is pure: given the desired Deployment (``Desired``), the live
Deployment (the watch index entry, or our own create not yet seen through the
watch) and what earlier ticks remember (``Memory``), it returns one of

- ``Create``: no Deployment yet; create this body (with initial replicas);
- ``Conflict``: a Deployment of that name exists and is not ours: touch nothing;
- ``Patch``: the parts that drifted (``spec.template``, ``spec.strategy``,
  ``spec.selector``, ``metadata.annotations``) and the apply body restoring them
  (``apply_body``: act.py writes it with server-side apply);
- ``InSync``: nothing to do;
- ``NeedFreeGPUs``: a GPU worker's rollout strategy must be chosen (on create
  or on a template change) and the caller has not said yet whether a surge pod
  would find a free GPU. The caller observes that (fresh) and plans again.

The loop applies the plan through act.py and then tells ``Memory`` what
happened (``created``, ``patched``, ``settle``): that is the only place the
memory changes.

Drift detection (deployment.drift) compares only what we set: fields the API
server defaults are not drift. Two rules keep it from looping or flapping:
after our own patch, a live spec whose hash equals what that patch produced is
the API server's normalisation, not a hand edit (``Memory.corrected_digest``);
and a GPU worker keeps the strategy it has until its template changes, with one
exception (``surge_blocked``): a surging rollout whose pod the scheduler turns
away for want of the GPU stops surging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from queueworker.operator import api
from queueworker.operator.cluster import deployment as dep

Entry = dict[str, Any]  # a Deployment as the index keeps it (cluster/index.py)
# (live entry, spec hash wanted): the entry last found in line with the spec.
CheckKey = tuple[Entry, str]


@dataclass(frozen=True)
class Create:
    body: dict[str, Any]
    replicas: int


@dataclass(frozen=True)
class Conflict:
    message: str


@dataclass(frozen=True)
class Patch:
    parts: tuple[str, ...]
    body: dict[str, Any]
    hand_edit: bool  # someone edited the Deployment (not a spec change of ours)
    # Why a GPU rollout stops surging (surge_blocked); None for any other patch.
    no_surge: str | None = None


@dataclass(frozen=True)
class InSync:
    check: CheckKey


@dataclass(frozen=True)
class NeedFreeGPUs:
    pass


Plan = Create | Conflict | Patch | InSync | NeedFreeGPUs


class Desired:
    """The desired Deployment of one parsed spec, built once per rollout strategy."""

    def __init__(self, name: str, namespace: str, uid: str, spec: api.QueueWorkerSpec,
                 shard: str | None = None) -> None:
        self.name, self.namespace, self.uid, self.spec = name, namespace, uid, spec
        self.shard = shard  # the operator's --shard, a label on the Deployment and pods
        gpu = dep.gpu_request(spec)
        self.gpu_resource = gpu[0] if gpu is not None else None
        self.gpu_worker = gpu is not None
        self._built: dict[bool, dict[str, Any]] = {}

    def body(self, gpu_surge: bool) -> dict[str, Any]:
        built = self._built.get(gpu_surge)
        if built is None:
            built = dep.build_deployment(self.name, self.namespace, self.uid, self.spec,
                                         gpu_surge=gpu_surge, shard=self.shard)
            self._built[gpu_surge] = built
        return built

    def create_body(self, replicas: int, gpu_surge: bool) -> dict[str, Any]:
        return dep.build_deployment(self.name, self.namespace, self.uid, self.spec,
                                    replicas=replicas, gpu_surge=gpu_surge,
                                    shard=self.shard)


class Memory:
    """What the plan remembers between ticks; changed only after a plan is carried out."""

    def __init__(self) -> None:
        self.created: Entry | None = None  # our own create, not yet seen through the watch
        self.corrected_digest: str | None = None  # spec hash our last patch produced
        self.corrected_surge = True  # whether the strategy our last patch wrote surges
        # kopf replaces an index entry when its object changes: the same entry and
        # the same wish need no second look.
        self.checked: CheckKey | None = None
        self._desired: Desired | None = None

    def desired(self, name: str, namespace: str, uid: str, spec: api.QueueWorkerSpec,
                shard: str | None = None) -> Desired:
        """The ``Desired`` of ``spec`` (the spec reader hands out the same object until
        the spec changes, so identity is the cache key; ``shard`` is the process's)."""
        if self._desired is None or self._desired.spec is not spec:
            self._desired = Desired(name, namespace, uid, spec, shard)
        return self._desired

    def live(self, entries: list[Entry]) -> Entry | None:
        """The index entry, or our own create while the watch has not shown it yet."""
        return entries[0] if entries else self.created

    def was_created(self, entry: Entry) -> None:
        """Remember our create until the watch shows it. Not a Deployment someone else
        made (our create was answered 409): it would stand in for the index after that
        one is deleted, and the conflict would never clear."""
        uid = self._desired.uid if self._desired is not None else None
        owners = (entry.get("metadata") or {}).get("ownerReferences") or []
        if any(o.get("kind") == "QueueWorker" and (uid is None or o.get("uid") == uid)
               for o in owners):
            self.created = entry

    def patched(self, result: Entry) -> None:
        self.corrected_digest = dep.spec_hash(dict(result.get("spec") or {}))
        self.corrected_surge = live_surge(result)
        self.created = None

    def settle(self, live: Entry, plan: Plan) -> None:
        """After an ``InSync`` or an applied ``Patch``."""
        if self.created is not None and live is not self.created:
            self.created = None
        self.checked = plan.check if isinstance(plan, InSync) else None


def initial_replicas(spec: api.QueueWorkerSpec, status: Mapping[str, Any]) -> int:
    """Replicas of a new Deployment: spec.replicas when paused, else the last desired
    count in status (an operator restart or a recreated Deployment), else the minimum."""
    if spec.scaling.paused and spec.replicas is not None:
        return spec.replicas
    previous = status.get("desiredReplicas")
    if isinstance(previous, int) and previous >= 0:
        return min(max(previous, spec.scaling.min_replicas), spec.scaling.max_replicas)
    return spec.scaling.min_replicas


def plan(desired: Desired, live: Entry | None, memory: Memory, *,
         status: Mapping[str, Any], surge_ok: bool | None = None,
         pods: Iterable[Mapping[str, Any]] = ()) -> Plan:
    """What to do to the Deployment; ``surge_ok``: whether a surge pod would find a free
    GPU now (None: not observed; asked for with ``NeedFreeGPUs`` where it matters);
    ``pods``: the QueueWorker's pod index entries (cluster/index.py)."""
    if live is None:
        if desired.gpu_worker and surge_ok is None:
            return NeedFreeGPUs()
        gpu_surge = bool(surge_ok) if desired.gpu_worker else True
        replicas = initial_replicas(desired.spec, status)
        return Create(desired.create_body(replicas, gpu_surge), replicas)
    if not dep.owned_by(live, desired.uid):
        return Conflict(f"Deployment {desired.namespace}/{desired.name} exists and is not "
                        "owned by this QueueWorker")
    blocked = _blocked(desired, live, pods, memory)
    want = desired.body((live_surge(live) and blocked is None) if desired.gpu_worker else True)
    want_hash = want["metadata"]["annotations"][dep.SPEC_HASH_ANNOTATION]
    check = (live, want_hash)
    # (blocked: the pods moved, not the Deployment, so the entry's last look says nothing)
    if (blocked is None and memory.checked is not None and memory.checked[0] is live
            and memory.checked[1] == want_hash and live is not memory.created):
        return InSync(check)
    parts = dep.drift(want, live)
    if (parts and blocked is None
            and dep.spec_hash(dict(live.get("spec") or {})) == memory.corrected_digest):
        # Our last patch already produced exactly this; what is left is the API
        # server's normalisation, not a hand edit: patching again would loop.
        parts = []
    if not parts:
        return InSync(check)
    if desired.gpu_worker and "spec.template" in parts:
        # A template change rolls the pods: the strategy follows the free GPUs now.
        if surge_ok is None:
            return NeedFreeGPUs()
        want = desired.body(surge_ok and blocked is None)
    return Patch(tuple(parts), apply_body(want),
                 hand_edit=blocked is None and _hand_edit(parts, live, want_hash),
                 no_surge=blocked)


def live_surge(live: Entry) -> bool:
    """Whether the live Deployment may surge: GPU workers keep the strategy they have
    until the template changes, so it never flips with the free GPUs."""
    rolling = ((live.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return bool(rolling.get("maxSurge", 1) != 0)


def surge_blocked(live: Entry, pods: Iterable[Mapping[str, Any]], resource: str
                  ) -> str | None:
    """Why a rollout of a GPU worker cannot go on surging, or None.

    The surge was allowed because a GPU looked free, from a pod index that may
    lag or before another workload took the GPU. Then the surge pod waits for a
    GPU the old pods hold, and with ``maxUnavailable: 0`` no old pod goes until
    it is Ready: the rollout hangs for good. The scheduler's word settles it: a
    rollout in progress (pods of an older template left: ``updatedReplicas`` below
    ``replicas`` in the Deployment's status) and a pod of ours it found no node for
    with too little of the GPU resource (the message names it; an empty message
    is taken as such for a GPU worker). Which template that pod has does not
    matter: with either, a surge pod would not find the GPU, and letting an old
    pod go first is what frees one."""
    status = live.get("status") or {}
    if int(status.get("updatedReplicas") or 0) >= int(status.get("replicas") or 0):
        return None
    for pod in pods:
        why = pod.get("unschedulable")
        if why is None or pod.get("terminating") or pod.get("node"):
            continue
        if not why or f"Insufficient {resource}" in why:
            return (f"pod {pod.get('name')} is Pending ({why or 'Unschedulable'}) "
                    f"while the rollout waits for a free {resource}: rolling on with "
                    "maxSurge 0, maxUnavailable 1")
    return None


def _blocked(desired: Desired, live: Entry, pods: Iterable[Mapping[str, Any]],
             memory: Memory) -> str | None:
    """``surge_blocked`` for a surging GPU worker, unless our last patch already
    stopped the surge for this very spec (the index has not shown it yet)."""
    if desired.gpu_resource is None or not live_surge(live):
        return None
    if (not memory.corrected_surge
            and dep.spec_hash(dict(live.get("spec") or {})) == memory.corrected_digest):
        return None
    return surge_blocked(live, pods, desired.gpu_resource)


def apply_body(want: Mapping[str, Any]) -> dict[str, Any]:
    """The server-side apply body: everything the operator owns, never replicas.

    Server-side apply, not a merge patch: a merge patch only sets the keys it
    carries, so a field removed from the template (an env var, a label, an
    annotation) stayed in the live Deployment. An apply is the whole intent of
    its field manager: what it applied before and leaves out now is removed.
    Kubernetes recommends it to controllers for the objects they own, with force
    (docs: Server-Side Apply, "Using Server-Side Apply in a controller").
    ``spec.replicas`` stays out: the autoscaler writes it under another manager
    (act.py), and a field an apply leaves out and nobody else owns is reset."""
    out = {key: value for key, value in want.items() if key != "spec"}
    out["spec"] = {key: value for key, value in want["spec"].items() if key != "replicas"}
    return out


def _hand_edit(parts: list[str], live: Entry, want_hash: str) -> bool:
    """The live Deployment carries the hash of the current spec, yet differs: someone
    edited it (a spec change of ours would have moved the hash)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return ("metadata.annotations" not in parts
            and annotations.get(dep.SPEC_HASH_ANNOTATION) == want_hash)
