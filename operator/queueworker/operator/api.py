"""The QueueWorker API (queueworker.dev/v1alpha1) as pydantic v2 models.

These models are the one source of truth: `queueworker crd` generates
crds/queueworker.yaml from them (see crd.py), and the operator, the local mode
and the simulator all read specs through them. Rules that span several fields
are written once, in ``CEL_RULES`` on each model: the CRD carries them as
``x-kubernetes-validations`` and the model's validator evaluates the same
predicate in Python, so a spec is rejected with the same message whether it
goes through the API server or through ``queueworker validate``.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

# The base and the spec's redis/queues parts live in sibling modules (to keep
# each file short); every name stays importable from here as `api.X`.
from queueworker.operator.api_model import CelRule as CelRule
from queueworker.operator.api_model import Model as Model
from queueworker.operator.api_model import model_types as model_types
from queueworker.operator.api_queues import CLUSTER_RULES
from queueworker.operator.api_queues import QueueLayout as QueueLayout
from queueworker.operator.api_queues import QueueSpec as QueueSpec
from queueworker.operator.api_queues import RedisSentinel as RedisSentinel
from queueworker.operator.api_queues import RedisSpec as RedisSpec
from queueworker.operator.api_queues import RedisTLS as RedisTLS
from queueworker.operator.api_queues import SecretKeyRef as SecretKeyRef
from queueworker.operator.api_schedules import MAX_SCHEDULES
from queueworker.operator.api_schedules import MinReplicasSchedule as MinReplicasSchedule

GROUP = "queueworker.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "QueueWorker"
PLURAL = "queueworkers"
SINGULAR = "queueworker"
SHORT_NAMES = ["qw"]

# Kubernetes names for condition types, reported on every QueueWorker.
CONDITION_TYPES = ("Ready", "SpecValid", "RedisReachable", "GPULimited", "Scaling")


# ------------------------------------------------------------------------- scaling


class ScalingPolicy(enum.StrEnum):
    backlog = "backlog"
    wait_time = "waitTime"


class RateLimit(Model):
    """At most `pods` (or `percent` of current replicas, whichever allows more) per period."""

    pods: Annotated[int | None, Field(ge=1, le=10000, description="Pods per period.")] = None
    percent: Annotated[
        int | None, Field(ge=1, le=1000, description="Percent of current replicas per period.")
    ] = None
    period_seconds: Annotated[
        int, Field(ge=1, le=3600, description="Length of the rate-limit period.")
    ] = 15


class ScaleUp(Model):
    stabilization_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=3600,
            description="Scale up to the lowest recommendation of this window (0: at once).",
        ),
    ] = 0
    rate_limit: Annotated[
        RateLimit | None, Field(description="Largest increase per period; none when absent.")
    ] = None


class ScaleDown(Model):
    stabilization_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=3600,
            description="Scale down only to the highest recommendation of this window.",
        ),
    ] = 60
    rate_limit: Annotated[
        RateLimit | None, Field(description="Largest decrease per period; none when absent.")
    ] = None


def _window_min(w: Any) -> Any:
    # CEL rules are also checked on the wire form (validation_schema): a dict there.
    return w.get("minReplicas", 0) if isinstance(w, dict) else w.min_replicas


class ScalingSpec(Model):
    min_replicas: Annotated[int, Field(ge=0, le=10000, description="Lower bound (0 allowed).")] = 0
    max_replicas: Annotated[int, Field(ge=1, le=10000, description="Upper bound.")] = 10
    policy: Annotated[
        ScalingPolicy,
        Field(
            description="backlog: keep jobs per replica near targetBacklogPerReplica. "
            "waitTime: size for targetWaitSeconds from measured arrival and service "
            "rates (Little's law), falling back to backlog without rates."
        ),
    ] = ScalingPolicy.backlog
    target_backlog_per_replica: Annotated[
        int, Field(ge=1, le=1_000_000, description="Jobs (waiting + in flight) per replica.")
    ] = 1
    target_wait_seconds: Annotated[
        float, Field(gt=0, le=86400, description="Target queue wait (policy waitTime).")
    ] = 30.0
    activation_backlog: Annotated[
        int,
        Field(
            ge=0,
            le=1_000_000,
            description="Scale from zero only when jobs waiting exceed this (0: the first job).",
        ),
    ] = 0
    poll_interval_seconds: Annotated[
        float, Field(ge=0.5, le=300, description="How often queue depth is read.")
    ] = 5.0
    scale_up: Annotated[ScaleUp, Field(description="Scale-up behaviour.")] = ScaleUp()
    scale_down: Annotated[ScaleDown, Field(description="Scale-down behaviour.")] = ScaleDown()
    idle_seconds_before_zero: Annotated[
        int,
        Field(ge=0, le=86400, description="Seconds with no jobs at all before scaling to 0."),
    ] = 60
    fallback_replicas: Annotated[
        int | None,
        Field(
            ge=0,
            le=10000,
            description="Replicas while the queues cannot be read; keep current when absent.",
        ),
    ] = None
    paused: Annotated[
        bool,
        Field(
            description="Stop autoscaling; spec.replicas (kubectl scale) decides replicas."
        ),
    ] = False
    min_replicas_schedules: Annotated[
        list[MinReplicasSchedule],
        Field(max_length=MAX_SCHEDULES,
              description="Windows of a higher minReplicas by cron and time zone (KEDA's "
              "cron scaler): warm pods before a known peak."),
    ] = []

    # has() guards: the API server checks these rules against the parent's
    # `default: {}` too, before nested defaults apply (a real object always has
    # both fields, defaulted). Without them the CRD itself is refused.
    CEL_RULES = (
        CelRule(
            "!has(self.minReplicas) || !has(self.maxReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            "minReplicas must be <= maxReplicas",
            "minReplicas",
            lambda s: s.min_replicas <= s.max_replicas,
        ),
        CelRule(
            "!has(self.fallbackReplicas) || self.fallbackReplicas <= self.maxReplicas",
            "fallbackReplicas must be <= maxReplicas",
            "fallbackReplicas",
            lambda s: s.fallback_replicas is None or s.fallback_replicas <= s.max_replicas,
        ),
        CelRule(
            "!has(self.minReplicasSchedules) || !has(self.maxReplicas)"
            " || self.minReplicasSchedules.all(w, w.minReplicas <= self.maxReplicas)",
            "every minReplicasSchedules[].minReplicas must be <= maxReplicas",
            "minReplicasSchedules",
            lambda s: all(_window_min(w) <= s.max_replicas for w in s.min_replicas_schedules),
        ),
    )


# ----------------------------------------------------------------------------- gpu


class GPUSpec(Model):
    resource_name: Annotated[
        str | None,
        Field(
            max_length=253,
            pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9._-]+$",
            description="Extended resource, e.g. nvidia.com/gpu or nvidia.com/mig-1g.5gb; "
            "found in the template's container limits when absent.",
        ),
    ] = None
    cap_to_free_capacity: Annotated[
        bool,
        Field(description="Never ask for more replicas than free GPUs can hold."),
    ] = True
    priority: Annotated[
        int,
        Field(
            ge=-1000,
            le=1000,
            description="Higher wins when QueueWorkers compete for the same free GPUs.",
        ),
    ] = 0


# --------------------------------------------------------------------------- drain


class DrainSpec(Model):
    grace_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=86400,
            description="Time a worker has to finish in-flight jobs on stop; becomes "
            "terminationGracePeriodSeconds.",
        ),
    ] = 120
    deadline_margin_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=3600,
            description="The worker hands unfinished jobs back this long before the grace "
            "period ends (its drain deadline).",
        ),
    ] = 10

    # has() guards: see ScalingSpec (the API server checks `default: {}` too).
    CEL_RULES = (
        CelRule(
            "!has(self.deadlineMarginSeconds) || !has(self.graceSeconds)"
            " || self.deadlineMarginSeconds < self.graceSeconds",
            "deadlineMarginSeconds must be < graceSeconds",
            "deadlineMarginSeconds",
            lambda s: s.deadline_margin_seconds < s.grace_seconds,
        ),
    )

    @property
    def worker_deadline_seconds(self) -> int:
        return self.grace_seconds - self.deadline_margin_seconds


# ------------------------------------------------------------------------ template


class Container(Model):
    """A container of the worker pod. Only name and image are checked here; every
    other field of a Kubernetes Container is accepted as is."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=63, description="Container name.")]
    image: Annotated[str, Field(min_length=1, description="Image to run.")]


class PodSpecPart(Model):
    model_config = ConfigDict(extra="allow")
    containers: Annotated[
        list[Container], Field(min_length=1, description="At least one container.")
    ]


class ObjectMetaPart(Model):
    model_config = ConfigDict(extra="allow")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodTemplate(Model):
    """A Kubernetes PodTemplateSpec: your worker image in any language, env,
    resources, nodeSelector, tolerations, affinity, volumes."""

    metadata: Annotated[ObjectMetaPart | None, Field(description="Labels and annotations.")] = (
        None
    )
    spec: Annotated[PodSpecPart, Field(description="Pod spec.")]


# ---------------------------------------------------------------------------- spec


class QueueWorkerSpec(Model):
    redis: Annotated[RedisSpec, Field(description="The Redis the queues live in.")]
    queues: Annotated[
        list[QueueSpec],
        Field(
            min_length=1,
            max_length=64,
            description="Queues to watch; the order is the priority order for native workers.",
        ),
    ]
    CEL_RULES = CLUSTER_RULES  # the queues a Redis Cluster can serve (api_queues.py)
    template: Annotated[PodTemplate, Field(description="Pod template of the workers.")]
    replicas: Annotated[
        int | None,
        Field(
            ge=0,
            le=10000,
            description="Replicas while scaling.paused (set by kubectl scale); ignored otherwise.",
        ),
    ] = None
    scaling: Annotated[ScalingSpec, Field(description="Autoscaling.")] = ScalingSpec()
    gpu: Annotated[GPUSpec, Field(description="GPU awareness.")] = GPUSpec()
    drain: Annotated[DrainSpec, Field(description="Graceful drain.")] = DrainSpec()

    @model_validator(mode="after")
    def _unique_queues(self) -> QueueWorkerSpec:
        # In the CRD this is x-kubernetes-list-type: map keyed by (name, layout).
        seen: set[tuple[str, QueueLayout]] = set()
        for q in self.queues:
            if (q.name, q.layout) in seen:
                raise PydanticCustomError(
                    "unique_queue",
                    "queues: queue {name!r} with layout {layout!r} is listed twice "
                    "(rule: list-map keys name, layout are unique)",
                    {"name": q.name, "layout": q.layout.value},
                )
            seen.add((q.name, q.layout))
        return self


# -------------------------------------------------------------------------- status


class Condition(Model):
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class QueueStatus(Model):
    name: str
    layout: QueueLayout
    waiting: int = 0
    in_flight: int = 0
    delayed: int = 0
    oldest_age_seconds: float | None = None
    paused: bool = False  # `queueworker queue pause`: its waiting jobs are no demand
    next_schedule_time: str | None = None  # its schedules' earliest tick (RFC 3339)


class GPUStatus(Model):
    resource_name: str | None = None
    per_replica: int = 0
    free: int = 0
    needed: int = 0
    limited_by: int = 0


class QueueWorkerStatus(Model):
    model_config = ConfigDict(extra="allow")
    observed_generation: int | None = None
    replicas: int = 0
    desired_replicas: int = 0
    ready_replicas: int = 0
    selector: str | None = None
    backlog: int = 0
    queues: list[QueueStatus] = []
    oldest_job_age_seconds: float | None = None
    gpu: GPUStatus | None = None
    gpu_limited: bool = False
    last_scale_time: str | None = None
    last_scale_reason: str | None = None
    conditions: list[Condition] = []
    engine_memory: dict[str, Any] | None = None
