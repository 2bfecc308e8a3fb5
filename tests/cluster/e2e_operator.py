"""The real operator against the real control plane, with real Redis and worker pods.

`queueworker operator` runs as a process with the admin kubeconfig; its
Deployments are rolled out by the real deployment and ReplicaSet controllers,
the scheduler places the pods on a fake Node, and the harness's kubelet runs
each pod's `queueworker worker` (handler: cluster/operator_jobs.py). A thread
watches the pods and notes, on this machine's clock, when each turned Ready and
when it was told to stop (deletionTimestamp); the handler logs when each job ran
on which pod, so the tests can tell whether a pod was stopped in the middle of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from queueworker.worker.producer import Producer

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.podwatch import PodSeen, PodWatcher
from cluster.wait import wait_until
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "qw-operator"
NODE = "operator-node-0"


@dataclass
class Env:
    kubectl: Kubectl
    redis: redis.Redis
    redis_url: str
    watcher: PodWatcher
    log: Path

    def apply(self, name: str, spec: dict[str, Any]) -> None:
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
        # replace, not apply: the spec sent is the whole spec (a field left out goes).
        verb = "replace" if self.get("qw", name) else "create"
        self.kubectl.run(verb, "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def replicas(self, name: str) -> int | None:
        dep = self.get("deployment", name)
        return None if dep is None else int(dep["spec"].get("replicas", 1))

    def pods(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl.run("get", "pods", "-n", NAMESPACE, "-o", "json", "-l",
                               f"app.kubernetes.io/instance={name}").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def job_log(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange("t:log", 0, -1)]

    def reset(self) -> None:
        self.redis.delete("t:started", "t:runs", "t:done", "t:log")


def worker_spec(redis_url: str, queue: str, *, version: str = "1", concurrency: int = 1,
                **scaling: Any) -> dict[str, Any]:
    container = {
        "name": "worker", "image": "queueworker",
        "args": ["queueworker", "worker", "--handler", "cluster.operator_jobs:handle",
                 "--concurrency", str(concurrency), "--prefetch", "0",
                 "--heartbeat-interval", "0.5", "--lease", "10"],
        "env": [{"name": "VERSION", "value": version}],
    }
    return {
        "redis": {"url": redis_url},
        "queues": [{"name": queue}],
        "scaling": {"pollIntervalSeconds": 0.5, "scaleDown": {"stabilizationSeconds": 1},
                    **scaling},
        "drain": {"graceSeconds": 30, "deadlineMarginSeconds": 10},
        "template": {"spec": {"containers": [container]}},
    }


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubelet: Kubelet, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kubelet.add_node(NODE)
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    kubectl.run("create", "namespace", NAMESPACE)
    server = RedisServer().start()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "queueworker.cli", "operator", "--standalone",
             "--namespace", NAMESPACE, "--metrics-port", "0", "--status-refresh", "1",
             "--log-format", "plain"],
            env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    watcher = PodWatcher(control_plane, NAMESPACE).start()
    try:
        yield Env(kubectl, redis.Redis.from_url(server.url), server.url, watcher, log)
        # The QueueWorkers carry the operator's finalizer: delete them while it runs.
        kubectl.run("delete", "qw", "--all", "-n", NAMESPACE, "--wait=true", timeout=120)
    finally:
        watcher.stopped.set()
        operator.terminate()
        try:
            operator.wait(20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        server.cleanup()


def assert_each_job_once(e: Env, count: int) -> None:
    done = {int(x) for x in e.redis.smembers("t:done")}
    assert done == set(range(count)), f"lost: {sorted(set(range(count)) - done)}"
    started = {int(k): int(v) for k, v in e.redis.hgetall("t:started").items()}
    runs = {int(k): int(v) for k, v in e.redis.hgetall("t:runs").items()}
    twice = [n for n, v in started.items() if v > 1]
    assert not twice, f"delivered twice: {twice}"
    assert max(runs.values()) == 1


def stopped_mid_job(e: Env, pods: dict[str, PodSeen]) -> list[tuple[str, int]]:
    """(pod, job) where the pod was told to stop while the job ran on it."""
    out = []
    for job in e.job_log():
        seen = pods.get(job["pod"])
        if seen and seen.deleted_at and job["start"] < seen.deleted_at < job["end"]:
            out.append((job["pod"], job["n"]))
    return out


def test_autoscale_from_zero_to_n_and_back_idle_pods_go_first(env: Env) -> None:
    e, name = env, "burst"
    e.reset()
    e.apply(name, worker_spec(e.redis_url, name, minReplicas=0, maxReplicas=4,
                              targetBacklogPerReplica=4, idleSecondsBeforeZero=3))
    wait_until("the Deployment at 0 replicas", lambda: e.replicas(name) == 0, 30, e.log)
    # Short jobs first, then two long ones: once the short ones are done two pods are
    # busy and the others idle, so the scale-down must pick the idle ones.
    short, long = 40, 2
    producer = Producer(e.redis)
    for n in range(short):
        producer.enqueue(name, {"n": n, "seconds": 0.2})
    for n in range(short, short + long):
        producer.enqueue(name, {"n": n, "seconds": 12})
    peak = 0

    def scaled_up() -> bool:
        nonlocal peak
        peak = max(peak, e.replicas(name) or 0)
        return peak >= 3

    wait_until("a scale-up to 3+ replicas", scaled_up, 60, e.log)
    wait_until("every job done", lambda: e.redis.scard("t:done") == short + long, 120, e.log)
    wait_until("back to 0 replicas", lambda: e.replicas(name) == 0, 60, e.log)
    wait_until("no pods left", lambda: not e.pods(name), 60, e.log)

    assert_each_job_once(e, short + long)
    log = e.job_log()
    long_jobs = [j for j in log if j["n"] >= short]
    long_pods = {j["pod"] for j in long_jobs}
    assert len(long_pods) == long, f"the long jobs ran on {long_pods}"
    pods = dict(e.watcher.pods)
    mine = {p: s for p, s in pods.items() if p.startswith(f"{name}-")}
    assert len(mine) >= 3
    # The partial scale-down: pods stopped while the long jobs still ran. Those were
    # marked with the lowest pod-deletion-cost, so the ReplicaSet controller took them.
    long_end = min(j["end"] for j in long_jobs)
    early = [p for p, s in mine.items() if s.deleted_at and s.deleted_at < long_end]
    assert early, "no pod went while the long jobs ran: no partial scale-down happened"
    assert not long_pods & set(early), f"a busy pod was stopped: {long_pods & set(early)}"
    assert not stopped_mid_job(e, mine), "a pod was stopped in the middle of a job"


def test_printer_columns_filled_and_kubectl_scale_while_paused(env: Env) -> None:
    e, name = env, "columns"
    e.reset()
    e.apply(name, worker_spec(e.redis_url, name, minReplicas=0, maxReplicas=2,
                              targetBacklogPerReplica=100, idleSecondsBeforeZero=600))
    producer = Producer(e.redis)
    for n in range(5):  # numbers of their own: no other test's job log can mix with them
        producer.enqueue(name, {"n": 1000 + n, "seconds": 0.1})

    def table() -> list[list[str]]:
        out = e.kubectl.run("get", "qw", name, "-n", NAMESPACE).stdout
        return [line.split() for line in out.splitlines()]

    assert table()[0][:6] == ["NAME", "BACKLOG", "DESIRED", "CURRENT", "READY", "GPU-LIMITED"]
    # The operator's status fills every column (no <none> left), from the real server's table.
    wait_until("printer columns filled", lambda: "<none>" not in table()[1], 30, e.log)
    row = table()[1]
    assert row[0] == name
    assert all(cell.isdigit() for cell in row[1:5]), row
    assert row[5] in ("true", "false"), row

    # Paused: `kubectl scale` (the scale subresource) decides the replicas.
    e.kubectl.run("patch", "qw", name, "-n", NAMESPACE, "--type=merge",
                  "-p", json.dumps({"spec": {"scaling": {"paused": True}}}))
    e.kubectl.run("scale", "qw", name, "-n", NAMESPACE, "--replicas=2")
    wait_until("the Deployment follows kubectl scale", lambda: e.replicas(name) == 2, 30, e.log)
    scale = json.loads(e.kubectl.run(
        "get", "--raw",
        f"/apis/queueworker.dev/v1alpha1/namespaces/{NAMESPACE}/queueworkers/{name}/scale").stdout)
    assert scale["spec"]["replicas"] == 2
    # Every job done before the QueueWorker goes, so no draining pod runs into the next test.
    wait_until("the five jobs done", lambda: e.redis.scard("t:done") == 5, 60, e.log)
    e.kubectl.run("delete", "qw", name, "-n", NAMESPACE, "--wait=true", timeout=120)
    wait_until("its pods gone", lambda: not e.pods(name), 60, e.log)


def test_redeploy_under_backlog_rolls_by_the_strategy_and_drains(env: Env) -> None:
    e, name, replicas = env, "redeploy", 2
    e.reset()
    spec = worker_spec(e.redis_url, name, minReplicas=replicas, maxReplicas=replicas)
    e.apply(name, spec)
    wait_until("2 ready pods", lambda: sum(
        1 for s in e.watcher.pods.values() if s.ready_at and not s.deleted_at
        and s.template_hash) >= replicas and len(e.pods(name)) == replicas, 60, e.log)
    jobs = 24
    producer = Producer(e.redis)
    for n in range(jobs):
        producer.enqueue(name, {"n": n, "seconds": 1.0})
    wait_until("jobs running", lambda: e.redis.hlen("t:started") >= replicas, 30, e.log)
    old_hash = {s.template_hash for p, s in e.watcher.pods.items() if p.startswith(name)}
    assert len(old_hash) == 1
    spec["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "2"}]
    e.apply(name, spec)
    wait_until("every job done", lambda: e.redis.scard("t:done") == jobs, 120, e.log)

    def rolled() -> bool:
        pods = e.pods(name)
        return len(pods) == replicas and all(
            p["metadata"]["labels"]["pod-template-hash"] not in old_hash for p in pods)

    wait_until("the rollout done", rolled, 60, e.log)
    dep = e.get("deployment", name) or {}
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert_each_job_once(e, jobs)
    versions = {j["version"] for j in e.job_log()}
    assert versions == {"1", "2"}, f"jobs ran under versions {versions}"

    pods = {p: s for p, s in e.watcher.pods.items() if p.startswith(f"{name}-")}
    old = {p: s for p, s in pods.items() if s.template_hash in old_hash}
    new = {p: s for p, s in pods.items() if s.template_hash not in old_hash}
    assert len(old) == replicas
    assert all(s.deleted_at for s in old.values())
    # maxUnavailable 0: the k-th old pod is told to stop only once k new pods are Ready.
    for k, at in enumerate(sorted(s.deleted_at for s in old.values() if s.deleted_at), 1):
        ready = sum(1 for s in new.values() if s.ready_at and s.ready_at <= at)
        assert ready >= k, f"old pod {k} stopped at {at} with {ready} new pods ready"
    # maxSurge 1: never more than replicas + 1 pods not told to stop.
    times = sorted({t for s in pods.values() for t in (s.ready_at, s.deleted_at) if t})
    for t in times:
        alive = sum(1 for s in pods.values()
                    if s.ready_at and s.ready_at <= t and not (s.deleted_at and s.deleted_at <= t))
        assert alive <= replicas + 1, f"{alive} pods at {t}"
    # Old workers drained: the jobs they ran when told to stop finished there, once.
    drained = stopped_mid_job(e, old)
    assert drained, "no old pod was busy when stopped: the drain was not exercised"


def test_a_field_removed_from_the_template_leaves_the_deployment(env: Env) -> None:
    e, name = env, "removal"
    spec = worker_spec(e.redis_url, name, minReplicas=0, maxReplicas=1)
    spec["template"]["metadata"] = {"labels": {"extra-label": "x"},
                                    "annotations": {"extra-annotation": "y"}}
    spec["template"]["spec"]["containers"][0]["env"].append({"name": "EXTRA", "value": "1"})
    e.apply(name, spec)

    def template() -> dict[str, Any]:
        return ((e.get("deployment", name) or {}).get("spec") or {}).get("template") or {}

    def env_names(tmpl: dict[str, Any]) -> set[str]:
        return {v["name"] for v in tmpl["spec"]["containers"][0].get("env") or []}

    first = wait_until("the Deployment", template, 30, e.log)
    assert "EXTRA" in env_names(first)
    assert first["metadata"]["labels"]["extra-label"] == "x"
    assert first["metadata"]["annotations"]["extra-annotation"] == "y"

    del spec["template"]["metadata"]
    spec["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "1"}]
    e.apply(name, spec)
    after = wait_until("EXTRA gone from the Deployment",
                       lambda: "EXTRA" not in env_names(template()) and template(), 30, e.log)
    assert "extra-label" not in after["metadata"].get("labels", {})
    assert "extra-annotation" not in (after["metadata"].get("annotations") or {})
    assert "VERSION" in env_names(after)  # what stays in the spec stays
    dep = e.get("deployment", name) or {}
    assert dep["spec"]["replicas"] == 0, "a template change must not touch replicas"
