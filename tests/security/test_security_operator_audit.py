"""Audit the real operator against the emulator: the RBAC it needs, and where secrets go.

One scenario exercises every code path that talks to the API (a password in a Secret in use,
a GPU node, scale up, idle pods annotated, scale down, a bad spec, delete). Every request the
operator makes is recorded (the test's own harness uses another token):

- the chart's ClusterRole grants every (resource, verb) the operator used, and grants nothing
  else without a reason written here;
- the Redis password never shows in logs, Events, status, Deployments, metrics or exceptions.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import kopf
import pytest
from prometheus_client import generate_latest

from queueworker.operator import metrics
from queueworker.operator.cluster import client as kube

from support.chart_tools import by_kind, render
from support.operator_cluster import Cluster, wait_for
from support.operator_specs import clear_queue, fast_config, heartbeat, push_jobs, spec
from support.redis_server import RedisServer

PASSWORD = "Aud1t-pa55word-xyz"
POLL = 0.5

# Granted by the chart but not used in this scenario, each with the reason it is needed.
EXPLAINED: dict[tuple[str, str], str] = {
    ("kopf.dev/clusterkopfpeerings", "get"): "peering (HA), off in standalone tests",
    ("kopf.dev/clusterkopfpeerings", "list"): "peering (HA), off in standalone tests",
    ("kopf.dev/clusterkopfpeerings", "watch"): "peering (HA), off in standalone tests",
    ("kopf.dev/clusterkopfpeerings", "patch"): "peering (HA), off in standalone tests",
    ("/namespaces", "list"): "kopf in namespace-pattern mode; tests run cluster-wide",
    ("/namespaces", "watch"): "as above",
    ("queueworker.dev/queueworkers/finalizers", "update"):
        "OwnerReferencesPermissionEnforcement: blockOwnerDeletion on the Deployment",
    ("apps/deployments", "get"): "reads the Deployment after a create conflict (409)",
}


def _verb(method: str, name: str | None, params: dict[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def _resource_verb(method: str, path: str, params: dict[str, str]) -> tuple[str, str] | None:
    discovery = path.rstrip("/") in ("/api", "/apis", "/version")
    if discovery or (path.count("/") <= 3 and path.startswith("/apis/")):
        return None  # discovery: allowed to every authenticated user
    if re.fullmatch(r"/api/v1/namespaces(/[^/]+)?", path):
        name = path.split("/")[4] if path.count("/") == 4 else None
        return "/namespaces", _verb(method, name, params)
    m = _PATH.match(path)
    if m is None:
        return None
    resource = f"{m['group'] or ''}/{m['res']}" + (f"/{m['sub']}" if m["sub"] else "")
    return resource, _verb(method, m["name"], params)


def _granted() -> set[tuple[str, str]]:
    # The operator's own role is the one its binding names (the chart also ships
    # ClusterRoles for people, aggregated into admin/edit/view: not the operator's).
    docs = render()
    [binding] = by_kind(docs, "ClusterRoleBinding")
    [role] = [r for r in by_kind(docs, "ClusterRole")
              if r["metadata"]["name"] == binding["roleRef"]["name"]]
    out = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((f"{group}/{res}", verb))
    return out


@pytest.fixture
def secure_redis() -> Any:
    server = RedisServer("--requirepass", PASSWORD).start()
    yield server
    server.cleanup()


async def test_rbac_matches_use_and_no_secret_leaks(
        secure_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    used: set[tuple[str, str]] = set()
    url = f"redis://:{PASSWORD}@127.0.0.1:{secure_redis.port}/0"
    async with Cluster(config=fast_config()) as c:
        # The harness acts with its own token, so only the operator's requests count.
        harness = kube.KubeClient(kopf.ConnectionInfo(server=c.url, insecure=True,
                                                      scheme="Bearer", token="harness"),
                                  backoffs=(0.1, 0.2))
        old = c.client
        c.client = c.controller.client = c.gc.client = harness
        await old.close()
        original = c.k._handle

        async def recording(request: Any) -> Any:
            auth = (request.headers or {}).get("Authorization", "")
            if "harness" not in auth:
                rv = _resource_verb(str(request.method).upper().split(".")[-1],
                                    request.url.path, dict(request.params or {}))
                if rv:
                    used.add(rv)
                    # A server-side apply may create the object: the API server then
                    # also checks "create" (apiserver handlers/patch.go).
                    if "apply-patch" in str((request.headers or {}).get("Content-Type", "")):
                        used.add((rv[0], "create"))
            return await original(request)

        c.k._handle = recording  # type: ignore[method-assign]
        await c.add_node("gpu-1", {"nvidia.com/gpu": "2", "cpu": "8"})
        await c.add_secret("redis-auth", {"password": PASSWORD})
        await c.start_operator()
        good = spec(f"redis://127.0.0.1:{secure_redis.port}/0", ["jobs"], poll=POLL,
                    maxReplicas=4, targetBacklogPerReplica=1, idleSecondsBeforeZero=600,
                    scaleDown={"stabilizationSeconds": 1})
        good["redis"]["passwordSecretRef"] = {"name": "redis-auth", "key": "password"}
        good["template"]["spec"]["containers"][0]["resources"] = {
            "limits": {"nvidia.com/gpu": 1}}
        await c.create_qw("jobs", good)
        bad = spec(f"redis://127.0.0.1:{secure_redis.port}/0", ["other"], poll=POLL)
        bad["redis"]["passwordSecretRef"] = {"name": "missing", "key": "password"}
        await c.create_qw("broken", bad)
        await wait_for(lambda: c.replicas("jobs") == 0, 15, "the Deployment at 0")
        push_jobs(url, "jobs", 20)
        await wait_for(lambda: c.replicas("jobs") == 2, 10, "2 replicas (GPU-capped)")
        pods = await wait_for(lambda: len(c.pods("jobs")) == 2 and c.pods("jobs"), 10, "pods")
        busy = pods[0]["metadata"]["name"]
        for p in pods:
            heartbeat(url, p["metadata"]["name"], "busy" if p["metadata"]["name"] == busy
                      else "idle")
        clear_queue(url, "jobs")
        await wait_for(lambda: c.replicas("jobs") == 1, 10, "scale down to the busy pod")
        await wait_for(lambda: c.condition("broken", "SpecValid"), 10, "SpecValid on broken")
        secure_redis.stop()  # errors while a password is in use
        await wait_for(lambda: (c.condition("jobs", "RedisReachable") or {}).get("status")
                       == "False", 10, "RedisReachable=False")
        everything = [str(c.qw("jobs")), str(c.qw("broken")), str(c.events()),
                      str(c.deployment("jobs")), str([p for p in c.pods("jobs")]),
                      generate_latest(metrics.REGISTRY).decode(), caplog.text]
        await c.delete_qw("broken")
        await asyncio.sleep(1.0)
        await harness.close()

    for where, text in zip(("status", "status", "events", "deployment", "pods", "metrics",
                            "logs"), everything, strict=True):
        assert PASSWORD not in text, f"the Redis password leaks into {where}"
    assert caplog.text, "the operator logged nothing: the scan would prove nothing"

    granted = _granted()
    missing = used - granted
    assert not missing, f"the operator used what the chart does not grant: {sorted(missing)}"
    unexplained = granted - used - set(EXPLAINED)
    assert not unexplained, f"the chart grants what nothing uses: {sorted(unexplained)}"
    stale = set(EXPLAINED) & used
    assert not stale, f"now used, drop from EXPLAINED: {sorted(stale)}"
