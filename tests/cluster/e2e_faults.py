"""The operator through the faults of a real control plane, Pod Security Admission, and
namespace deletion.

One operator process (admin kubeconfig, three namespaces) for the module:

- faults: the API server restarted, etcd killed and restarted, the API server
  restarted after etcd was compacted past every resourceVersion the operator had seen
  (its watches must get 410 Gone and list again), and a 409 from a Deployment of the
  same name made by someone else. The operator must come back acting (a new backlog is
  scaled for), without flapping (the Deployment's spec is written once per real
  decision: its generation tells), without duplicate Events, and with its conditions
  unmoved;
- a namespace labelled `pod-security.kubernetes.io/enforce=restricted`: the operator
  does not get around it (the ReplicaSet's pods are refused) and says so: Ready False,
  reason PodsRefused with the admission message, one Warning Event; a template that
  meets the profile runs;
- a namespace deleted with a live QueueWorker in it (Deployment, pod, the operator's
  finalizer) completes.

Worker pods run no process (a plain image, emulated by the harness's kubelet), so the
backlog pushed stays put and asks for a stable number of replicas.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from queueworker.worker.producer import Producer

from cluster.controlplane import ControlPlane
from cluster.kubeapi import ApiError
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.operators import Operator, start_operator
from cluster.wait import wait_until
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FAULTS, PSA, DOOMED = "qw-faults", "qw-psa", "qw-doomed"
NODE = "faults-node-0"
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass
class Env:
    plane: ControlPlane
    kubectl: Kubectl
    redis: redis.Redis
    redis_url: str
    operator: Operator

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def apply_qw(self, namespace: str, name: str, *, max_replicas: int = 4, min_replicas: int = 0,
                 security: dict[str, Any] | None = None) -> None:
        container: dict[str, Any] = {"name": "worker", "image": "example.org/worker:1"}
        if security:
            container["securityContext"] = security
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"redis": {"url": self.redis_url}, "queues": [{"name": name}],
                             "scaling": {"pollIntervalSeconds": 0.5,
                                         "minReplicas": min_replicas,
                                         "maxReplicas": max_replicas,
                                         "targetBacklogPerReplica": 5},
                             "drain": {"graceSeconds": 2, "deadlineMarginSeconds": 1},
                             "template": {"spec": {"containers": [container]}}}}
        self.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any]:
        qw = self.get("qw", name, namespace) or {}
        for cond in (qw.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                found: dict[str, Any] = cond
                return found
        return {}

    def events(self, namespace: str, name: str) -> list[tuple[str, str]]:
        out = self.kubectl.run("get", "events", "-n", namespace, "-o", "json",
                               f"--field-selector=involvedObject.name={name},"
                               "involvedObject.kind=QueueWorker").stdout
        return sorted((ev["reason"], ev["message"]) for ev in json.loads(out)["items"])

    def api_up(self) -> bool:
        return self.plane.get("/readyz") == 200


def etcd_call(plane: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's v3 JSON gateway (the harness builds no etcdctl)."""
    assert plane.state is not None
    req = urllib.request.Request(f"http://127.0.0.1:{plane.state.etcd_port}{path}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        out: dict[str, Any] = json.load(resp)
        return out


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubelet: Kubelet, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kubelet.add_node(NODE)
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    for ns in (FAULTS, PSA, DOOMED):
        kubectl.run("create", "namespace", ns)
    kubectl.run("label", "namespace", PSA, "pod-security.kubernetes.io/enforce=restricted")
    server = RedisServer().start()
    log = tmp_path_factory.mktemp("faults") / "operator.log"
    op = start_operator(control_plane.kubeconfig,
                        ["--standalone", "--namespace", FAULTS, "--namespace", PSA,
                         "--namespace", DOOMED, "--status-refresh", "1", "--log-format",
                         "plain"], log)
    try:
        yield Env(control_plane, kubectl, redis.Redis.from_url(server.url), server.url, op)
        for ns in (FAULTS, PSA):  # the finalizers go while the operator runs
            kubectl.run("delete", "qw", "--all", "-n", ns, "--wait=true", timeout=120)
    finally:
        op.stop()
        for ns in (FAULTS, PSA, DOOMED):
            kubectl.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found",
                        check=False)
        server.cleanup()


def test_api_server_and_etcd_restarts_and_410_no_flapping_no_duplicate_events(
        env: Env) -> None:
    e, name = env, "steady"
    producer = Producer(e.redis)
    for n in range(15):  # before the QueueWorker: one scale-up, not one per poll mid-push
        producer.enqueue(name, {"n": n})
    e.apply_qw(FAULTS, name)
    wait_until("3 replicas", lambda: ((e.get("deployment", name, FAULTS) or {}).get(
        "status") or {}).get("readyReplicas") == 3, 60, e.operator.log)
    wait_until("Ready and Stable", lambda: e.condition(FAULTS, name, "Scaling").get(
        "reason") == "Stable" and e.condition(FAULTS, name, "Ready").get("status") == "True",
        30, e.operator.log)
    before = e.get("deployment", name, FAULTS) or {}
    ready_since = e.condition(FAULTS, name, "Ready")["lastTransitionTime"]
    events = e.events(FAULTS, name)
    assert [r for r, _ in events] == ["ScaledUp"], events
    api = e.plane.api()
    old_rv = api.get(f"/api/v1/namespaces/{FAULTS}/pods")["metadata"]["resourceVersion"]

    e.plane.restart("kube-apiserver")
    e.plane.halt("etcd", kill=True)  # a crash: no clean shutdown
    wait_until("the API server unready without etcd", lambda: not e.api_up(), 30)
    e.plane.resume("etcd")
    wait_until("the API server back", e.api_up, 60)

    # 410: with the API server down, etcd moves on and is compacted past every
    # resourceVersion anyone has seen; watches resumed from those are expired.
    e.plane.halt("kube-apiserver")
    rev = etcd_call(e.plane, "/v3/kv/put", {"key": b64("/qw-e2e/bump"), "value": b64("1")})
    etcd_call(e.plane, "/v3/kv/compaction", {"revision": rev["header"]["revision"],
                                             "physical": True})
    e.plane.resume("kube-apiserver")
    first = next(api.watch(f"/api/v1/namespaces/{FAULTS}/pods", old_rv, timeout_seconds=5))
    assert first["type"] == "ERROR", first
    assert first["object"]["code"] == 410, first

    # Back and acting: a new backlog is scaled for.
    for n in range(15, 20):
        producer.enqueue(name, {"n": n})
    wait_until("4 replicas after the faults", lambda: (e.get("deployment", name, FAULTS) or {})
               .get("spec", {}).get("replicas") == 4, 60, e.operator.log)
    wait_until("Stable again", lambda: e.condition(FAULTS, name, "Scaling").get(
        "reason") == "Stable", 30, e.operator.log)
    after = e.get("deployment", name, FAULTS) or {}
    # Exactly one spec write since (the 3 -> 4): nothing was re-applied or flapped.
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert e.condition(FAULTS, name, "Ready")["lastTransitionTime"] == ready_since
    new = e.events(FAULTS, name)
    assert len(new) == len(set(new)), f"duplicate Events: {new}"
    assert [r for r, _ in new] == ["ScaledUp", "ScaledUp"], new
    assert any(m.startswith("3 -> 4") for _, m in new), new


def test_409_from_a_foreign_deployment_then_recovery(env: Env) -> None:
    e, name = env, "foreign"
    e.kubectl.run("create", "deployment", name, "-n", FAULTS, "--image=example.org/other:1",
                  "--replicas=0")
    e.apply_qw(FAULTS, name, min_replicas=1)
    wait_until("DeploymentConflict", lambda: e.condition(FAULTS, name, "SpecValid").get(
        "reason") == "DeploymentConflict", 30, e.operator.log)
    # The operator's create (server-side apply without force) was answered 409.
    assert 'queueworker_api_errors_total{operation="create_deployment"}' in e.operator.metrics()
    dep = e.get("deployment", name, FAULTS) or {}
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/other:1"
    e.kubectl.run("delete", "deployment", name, "-n", FAULTS, "--wait=true")
    wait_until("its own Deployment", lambda: ((e.get("deployment", name, FAULTS) or {}).get(
        "metadata", {}).get("ownerReferences") or [{}])[0].get("kind") == "QueueWorker",
        30, e.operator.log)
    wait_until("SpecValid again", lambda: e.condition(FAULTS, name, "SpecValid").get(
        "status") == "True", 30, e.operator.log)
    warnings = [ev for ev in e.events(FAULTS, name) if ev[0] == "DeploymentConflict"]
    assert len(warnings) == 1, warnings  # one Event, not one per poll


def test_restricted_namespace_refuses_the_pods_and_the_operator_says_so(env: Env) -> None:
    e, name = env, "plain"
    e.apply_qw(PSA, name, min_replicas=1, max_replicas=1)
    cond = wait_until("Ready False PodsRefused", lambda: (
        c := e.condition(PSA, name, "Ready")).get("reason") == "PodsRefused" and c, 60,
        e.operator.log)
    assert cond["status"] == "False"
    assert "PodSecurity" in cond["message"], cond
    assert "restricted" in cond["message"], cond
    wait_until("a PodsRefused Event", lambda: any(
        r == "PodsRefused" for r, _ in e.events(PSA, name)), 30, e.operator.log)
    pods = json.loads(e.kubectl.run("get", "pods", "-n", PSA, "-o", "json").stdout)["items"]
    assert pods == []
    refused = [ev for ev in e.events(PSA, name) if ev[0] == "PodsRefused"]
    assert len(refused) == 1, refused

    # A template that meets the profile runs, and Ready comes back.
    e.apply_qw(PSA, name, min_replicas=1, max_replicas=1, security=RESTRICTED)
    wait_until("Ready True", lambda: e.condition(PSA, name, "Ready").get("status") == "True",
               60, e.operator.log)
    wait_until("its pod Ready", lambda: ((e.get("deployment", name, PSA) or {}).get(
        "status") or {}).get("readyReplicas") == 1, 60, e.operator.log)


def test_a_namespace_deleted_with_a_live_queueworker_completes(env: Env) -> None:
    e, name = env, "doomed"
    e.apply_qw(DOOMED, name, min_replicas=1, max_replicas=1)
    wait_until("its pod Ready", lambda: ((e.get("deployment", name, DOOMED) or {}).get(
        "status") or {}).get("readyReplicas") == 1, 60, e.operator.log)
    qw = e.get("qw", name, DOOMED) or {}
    assert "queueworker.dev/finalizer" in qw["metadata"]["finalizers"]
    e.kubectl.run("delete", "namespace", DOOMED, "--wait=false")

    def gone() -> bool:
        try:
            e.plane.api().get(f"/api/v1/namespaces/{DOOMED}")
        except ApiError as err:
            return err.status == 404
        return False

    wait_until("the namespace gone", gone, 90, e.operator.log)
