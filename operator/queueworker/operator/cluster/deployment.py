"""Build the worker Deployment of a QueueWorker, and tell when a live one drifted.

Choices, and why:

- The Deployment is named like the QueueWorker and owned by it (controller
  owner reference), so deleting the QueueWorker garbage-collects it.
- The selector holds only labels that never change for the life of the object
  (``app.kubernetes.io/name`` and ``app.kubernetes.io/instance``): a Deployment
  selector is immutable.
- ``spec.replicas`` is not part of what is applied on reconcile and not part
  of the spec hash: the autoscaler owns it, so a scaling change never touches
  the pod template and never restarts a pod.
- Rolling updates use ``maxUnavailable: 0`` so a redeploy never drops
  capacity. The surge needs a spare replica's worth of resources. For GPU
  workers a surge pod asks for GPUs that the old pods still hold (they keep
  them through their whole drain grace), so on a full cluster it would sit
  Pending and stall the rollout, while a maxSurge of 0 would force
  maxUnavailable >= 1. The builder takes ``gpu_surge`` from the caller, who
  knows the free GPUs: with a free replica's worth it keeps maxSurge 1 and
  maxUnavailable 0; without, it falls back to maxSurge 0 / maxUnavailable 1,
  trading one replica of capacity for the rollout's duration against a
  rollout that cannot finish or GPUs booked twice.
- A sharded operator (``--shard NAME``) stamps ``queueworker.dev/shard=NAME`` on
  the Deployment and its pod template, the shard serving it (not the
  QueueWorker's own labels, so any ``--shard-selector`` works), and watches its
  Deployments and pods by that label: docs/sharding.md. Unsharded, no label.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from queueworker.engine import resources
from queueworker.observe.layouts.native import worker_prefix
from queueworker.operator import api
from queueworker.worker.config import (
    ENV_DRAIN_DEADLINE,
    ENV_POD_NAME,
    ENV_PREFIX,
    ENV_QUEUES,
    ENV_REDIS_CA_FILE,
    ENV_REDIS_DB,
    ENV_REDIS_PASSWORD,
    ENV_REDIS_SENTINEL_CA_FILE,
    ENV_REDIS_SENTINEL_PASSWORD,
    ENV_REDIS_SENTINEL_TLS,
    ENV_REDIS_SENTINEL_TLS_INSECURE,
    ENV_REDIS_SENTINEL_USERNAME,
    ENV_REDIS_TLS,
    ENV_REDIS_TLS_INSECURE,
    ENV_REDIS_URL,
    ENV_REDIS_USERNAME,
)

MANAGED_BY = "queueworker-operator"
APP_NAME = "queueworker"
SPEC_HASH_ANNOTATION = "queueworker.dev/spec-hash"
PAUSED_ANNOTATION = "queueworker.dev/paused"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_SHARD = "queueworker.dev/shard"  # shard.SHARD_LABEL; the serving shard's name

# The CA Secret of spec.redis.tls.caSecretRef is mounted here, read-only.
CA_MOUNT_PATH = "/etc/queueworker/redis-ca"
CA_VOLUME = "queueworker-redis-ca"
# ... and that of spec.redis.sentinel.tls.caSecretRef here.
SENTINEL_CA_MOUNT_PATH = "/etc/queueworker/redis-sentinel-ca"
SENTINEL_CA_VOLUME = "queueworker-redis-sentinel-ca"


def selector_labels(name: str) -> dict[str, str]:
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name}


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(name).items()))


def object_labels(name: str, shard: str | None = None) -> dict[str, str]:
    """Labels of the Deployment and its pods; ``shard``: the name of the operator shard
    serving them (its Deployment and pod watches select on it), None unsharded."""
    return {
        **selector_labels(name),
        LABEL_COMPONENT: "worker",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "queueworker",
        **({LABEL_SHARD: shard} if shard else {}),
    }


def gpu_request(spec: api.QueueWorkerSpec) -> tuple[str, int] | None:
    """(resource name, units per replica) of the GPU resource the template asks for.

    The same resource and the same effective request as the GPU accounting
    (queueworker.engine.capacity) uses; a named resource the template does not
    ask for still counts as one unit.
    """
    tmpl = spec.template.to_wire()["spec"]
    resource = spec.gpu.resource_name or resources.find_gpu_resource(tmpl)
    if resource is None:
        return None
    return resource, max(resources.pod_request(tmpl, resource), 1)


def _secret_env(name: str, ref: api.SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _sentinel_env(s: api.RedisSentinel) -> list[dict[str, Any]]:
    """The redis+sentinel:// URL (worker/connection.py) and the Sentinels' own settings."""
    url = f"redis+sentinel://{','.join(s.addresses)}/{quote(s.master_name, safe='')}"
    env: list[dict[str, Any]] = [{"name": ENV_REDIS_URL, "value": url}]
    if s.username:
        env.append({"name": ENV_REDIS_SENTINEL_USERNAME, "value": s.username})
    if s.password_secret_ref is not None:
        env.append(_secret_env(ENV_REDIS_SENTINEL_PASSWORD, s.password_secret_ref))
    if s.tls.enabled:
        env.append({"name": ENV_REDIS_SENTINEL_TLS, "value": "true"})
    if s.tls.insecure_skip_verify:
        env.append({"name": ENV_REDIS_SENTINEL_TLS_INSECURE, "value": "true"})
    if s.tls.ca_secret_ref is not None:
        env.append({"name": ENV_REDIS_SENTINEL_CA_FILE,
                    "value": f"{SENTINEL_CA_MOUNT_PATH}/{s.tls.ca_secret_ref.key}"})
    return env


def _ca_volumes(spec: api.QueueWorkerSpec) -> list[tuple[str, str, str]]:
    """(volume, mount path, Secret name) of every CA Secret the worker reads."""
    out = []
    if spec.redis.tls.ca_secret_ref is not None:
        out.append((CA_VOLUME, CA_MOUNT_PATH, spec.redis.tls.ca_secret_ref.name))
    sentinel = spec.redis.sentinel
    if sentinel is not None and sentinel.tls.ca_secret_ref is not None:
        out.append((SENTINEL_CA_VOLUME, SENTINEL_CA_MOUNT_PATH, sentinel.tls.ca_secret_ref.name))
    return out


def _env_for(spec: api.QueueWorkerSpec) -> list[dict[str, Any]]:
    redis = spec.redis
    env: list[dict[str, Any]] = []
    if redis.sentinel is not None:
        env += _sentinel_env(redis.sentinel)
    elif redis.url_secret_ref is not None:
        env.append({"name": ENV_REDIS_URL, "valueFrom": {"secretKeyRef": {
            "name": redis.url_secret_ref.name, "key": redis.url_secret_ref.key}}})
    elif redis.url is not None:
        env.append({"name": ENV_REDIS_URL, "value": redis.url})
    if redis.password_secret_ref is not None:
        env.append({"name": ENV_REDIS_PASSWORD, "valueFrom": {"secretKeyRef": {
            "name": redis.password_secret_ref.name, "key": redis.password_secret_ref.key}}})
    if redis.username:
        env.append({"name": ENV_REDIS_USERNAME, "value": redis.username})
    if redis.db is not None:
        env.append({"name": ENV_REDIS_DB, "value": str(redis.db)})
    if redis.tls.enabled:
        env.append({"name": ENV_REDIS_TLS, "value": "true"})
    if redis.tls.insecure_skip_verify:
        env.append({"name": ENV_REDIS_TLS_INSECURE, "value": "true"})
    if redis.tls.ca_secret_ref is not None:
        env.append({"name": ENV_REDIS_CA_FILE,
                    "value": f"{CA_MOUNT_PATH}/{redis.tls.ca_secret_ref.key}"})
    env.append({"name": ENV_QUEUES, "value": ",".join(q.name for q in spec.queues)})
    prefix = worker_prefix(spec)
    if prefix is not None:  # the native worker keeps all its keys under one prefix
        env.append({"name": ENV_PREFIX, "value": prefix})
    env.append({"name": ENV_DRAIN_DEADLINE, "value": str(spec.drain.worker_deadline_seconds)})
    env.append({"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


def build_pod_template(name: str, spec: api.QueueWorkerSpec, shard: str | None = None
                       ) -> dict[str, Any]:
    template = spec.template.to_wire()
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **object_labels(name, shard)}
    template["metadata"] = meta
    pod_spec = dict(template["spec"])
    ours = _env_for(spec)
    containers = []
    for container in pod_spec["containers"]:
        container = dict(container)
        user_env = list(container.get("env") or [])
        # The user's own setting of a name wins: it may point the worker elsewhere on purpose.
        user_names = {e.get("name") for e in user_env}
        container["env"] = [e for e in ours if e["name"] not in user_names] + user_env
        for volume, path, _ in _ca_volumes(spec):
            container["volumeMounts"] = [
                *(container.get("volumeMounts") or []),
                {"name": volume, "mountPath": path, "readOnly": True}]
        containers.append(container)
    pod_spec["containers"] = containers
    for volume, _, secret in _ca_volumes(spec):
        pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), {
            "name": volume, "secret": {"secretName": secret}}]
    pod_spec["terminationGracePeriodSeconds"] = spec.drain.grace_seconds
    template["spec"] = pod_spec
    return template


def rolling_strategy(gpu_surge: bool) -> dict[str, Any]:
    if gpu_surge:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def build_deployment(
    name: str,
    namespace: str,
    uid: str,
    spec: api.QueueWorkerSpec,
    *,
    replicas: int | None = None,
    gpu_surge: bool = True,
    shard: str | None = None,
) -> dict[str, Any]:
    """The desired Deployment; ``replicas`` is set only when creating it; ``shard``: the
    serving operator's ``--shard`` (a label on the Deployment and its pods)."""
    body_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(name)},
        "template": build_pod_template(name, spec, shard),
        "strategy": rolling_strategy(gpu_surge),
        "revisionHistoryLimit": 3,
    }
    digest = spec_hash(body_spec)
    if replicas is not None:
        body_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": object_labels(name, shard),
            "annotations": {SPEC_HASH_ANNOTATION: digest},
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": body_spec,
    }


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_hash(body_spec: dict[str, Any]) -> str:
    """Hash of what the QueueWorker asks of the Deployment: neither replicas (the
    autoscaler's) nor strategy (for GPU workers it follows free GPUs at the time
    of a template change, and must not flip back and forth with them)."""
    data = {k: v for k, v in body_spec.items() if k not in ("replicas", "strategy")}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_subset(desired: Any, live: Any) -> bool:
    """Whether everything we set is still in the live object.

    Fields the API server defaults (imagePullPolicy, terminationMessagePath, ...)
    are extra in the live object and do not count as drift; a changed value, a
    removed field or a list of another length does.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return desired == live
    if desired == live or str(desired) == str(live):
        return True
    # The API server normalises quantities ("1000m" -> "1", "1024Mi" -> "1Gi").
    return resources.same_quantity(desired, live)


def drift(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Top-level parts of the Deployment spec that differ from what we want."""
    out: list[str] = []
    live_spec = live.get("spec") or {}
    want_spec = desired["spec"]
    for part in ("template", "strategy", "selector"):
        if not is_subset(want_spec[part], live_spec.get(part)):
            out.append(f"spec.{part}")
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    want_hash = desired["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    if annotations.get(SPEC_HASH_ANNOTATION) != want_hash and "spec.template" not in out:
        out.append("metadata.annotations")
    return out


def owned_by(live: dict[str, Any], uid: str) -> bool:
    refs = (live.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)
