"""The Helm chart on the real control plane, and the operator as the chart's ServiceAccount.

`helm install` the chart (watching one namespace), then run `queueworker operator`
with the arguments of the Deployment Helm created, authenticated by a token from the
TokenRequest API for the chart's ServiceAccount (no client certificate, no admin):
the real RBAC authorizer decides every call, so the operator scaling a QueueWorker
proves the chart's rules are enough, and `kubectl auth can-i --list` for that
ServiceAccount equals the rules tests/chart/test_chart_rbac.py audits (beyond what
every ServiceAccount may do), so they are no more than that.

Then `helm upgrade` to two replicas: peering (the KopfPeering the chart makes, with
the chart's RBAC), two operator processes, the active one SIGKILLed, the standby
acting within the peering lifetime. Last, the watched namespace deleted with a live
QueueWorker in it (Deployment, pods, the operator's finalizer), after its Role and
RoleBinding, the worst order the namespace controller can take: the operator still
releases the finalizer (its QueueWorker rights come from the ClusterRole) and the
namespace goes; then `helm uninstall`, which leaves the CRDs.

Worker pods run no process here (a plain image: the harness's kubelet emulates the
container), so the backlog stays put and the replica count it asks for is stable.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from chart.test_chart_rbac import CLUSTER_RULES, NAMESPACED_RULES, PEERING_RULE

from queueworker.worker.producer import Producer

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.operators import Operator, chart_args, start_operator, token_kubeconfig
from cluster.wait import wait_until
from support.chart_tools import CHART, helm
from support.redis_server import RedisServer

NAMESPACE = "qw-helm"  # watched by the release
SYSTEM = "qw-helm-system"  # the release's own namespace
RELEASE = "qwh"  # not "qw": e2e_security applies the chart's people roles as release qw
FULLNAME = f"{RELEASE}-queueworker-operator"
SA_USER = f"system:serviceaccount:{SYSTEM}:{FULLNAME}"
NODE = "helm-node-0"
LIFETIME = 10  # --peering-lifetime for the failover (the default is 60)
FINALIZER = "queueworker.dev/finalizer"


@dataclass
class Env:
    plane: ControlPlane
    kubectl: Kubectl
    redis: redis.Redis
    redis_url: str
    tmp: Path
    operators: list[Operator] = field(default_factory=list)

    def helm(self, *args: str) -> str:
        return helm(*args, f"--kubeconfig={self.plane.kubeconfig}").stdout

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def replicas(self, name: str) -> int | None:
        dep = self.get("deployment", name)
        return None if dep is None else int(dep["spec"].get("replicas", 1))

    def operator_args(self) -> list[str]:
        dep = self.get("deployment", FULLNAME, SYSTEM) or {}
        args: list[str] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    def start_as_sa(self, *extra: str, label: str = "operator") -> Operator:
        """The chart's operator command line, as the chart's ServiceAccount."""
        token = self.kubectl.run("create", "token", FULLNAME, "-n", SYSTEM,
                                 "--duration=1h").stdout.strip()
        assert self.plane.state is not None
        config = token_kubeconfig(self.tmp / f"{label}.kubeconfig", self.plane.state.server,
                                  self.plane.pki, FULLNAME, token)
        who = self.kubectl.run(f"--kubeconfig={config}", "auth", "whoami", "-o", "json")
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == SA_USER
        op = start_operator(config, [*chart_args(self.operator_args()), *extra],
                            self.tmp / f"{label}.log")
        self.operators.append(op)
        return op

    def apply_qw(self, name: str, queue: str, max_replicas: int) -> None:
        container = {"name": "worker", "image": "example.org/worker:1"}
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"redis": {"url": self.redis_url}, "queues": [{"name": queue}],
                             "scaling": {"pollIntervalSeconds": 0.5, "minReplicas": 0,
                                         "maxReplicas": max_replicas,
                                         "targetBacklogPerReplica": 5},
                             "drain": {"graceSeconds": 2, "deadlineMarginSeconds": 1},
                             "template": {"spec": {"containers": [container]}}}}
        self.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))


def permissions(kubectl: Kubectl, user: str, namespace: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list` as `user`: verbs per resource (resource rows only)."""
    out = kubectl.run("auth", "can-i", "--list", "-n", namespace, f"--as={user}").stdout
    rights: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        if not line or line[0].isspace():  # a non-resource URL row
            continue
        verbs = re.findall(r"\[([^\]]*)\]", line)[-1].split()
        rights.setdefault(line.split()[0], set()).update(verbs)
    return rights


def kubectl_names(rules: dict[tuple[str, str], set[str]]) -> dict[str, set[str]]:
    """(apiGroup, resource[/sub]) -> kubectl's `resource.group[/sub]`."""
    out: dict[str, set[str]] = {}
    for (group, resource), verbs in rules.items():
        plural, _, sub = resource.partition("/")
        name = f"{plural}.{group}" if group else plural
        out.setdefault(f"{name}/{sub}" if sub else name, set()).update(verbs)
    return out


def merge(*rule_sets: dict[tuple[str, str], set[str]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rules in rule_sets:
        for key, verbs in rules.items():
            out[key] = out.get(key, set()) | verbs
    return out


def extra_rights(kubectl: Kubectl, user: str, namespace: str) -> dict[str, set[str]]:
    """What `user` may do in `namespace` beyond any ServiceAccount with no binding."""
    baseline = permissions(kubectl, f"system:serviceaccount:{SYSTEM}:nobody", namespace)
    mine = permissions(kubectl, user, namespace)
    extra = {r: v - baseline.get(r, set()) for r, v in mine.items()}
    return {r: v for r, v in extra.items() if v}


def forbidden_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if re.search(r"\b403\b|[Ff]orbidden|[Nn]ot enough permissions", line)]


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubelet: Kubelet, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kubelet.add_node(NODE)
    kubectl.run("create", "namespace", NAMESPACE)
    server = RedisServer().start()
    e = Env(control_plane, kubectl, redis.Redis.from_url(server.url), server.url,
            tmp_path_factory.mktemp("helm"))
    try:
        yield e
    finally:
        for op in e.operators:
            op.stop(signal.SIGKILL)
        # Whatever a failed test left: the finalizer would keep the namespace.
        kubectl.run("patch", "qw", "--all", "-n", NAMESPACE, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False)
        helm("uninstall", RELEASE, "-n", SYSTEM, f"--kubeconfig={control_plane.kubeconfig}",
             check=False)
        for ns in (NAMESPACE, SYSTEM):
            kubectl.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found",
                        check=False)
        server.cleanup()


def test_install_then_the_operator_as_the_charts_service_account_scales(env: Env) -> None:
    e = env
    e.helm("install", RELEASE, str(CHART), "-n", SYSTEM, "--create-namespace",
           f"--set=watchNamespaces={{{NAMESPACE}}}")
    wait_until("the QueueWorker CRD established", lambda: e.kubectl.run(
        "wait", "--for=condition=Established", "--timeout=5s",
        "crd/queueworkers.queueworker.dev", check=False).returncode == 0, 30)
    assert e.get("serviceaccount", FULLNAME, SYSTEM) is not None

    # Least privilege, by the real authorizer: in the watched namespace exactly the
    # audited rules (namespaced + cluster-scoped + peering + pods everywhere for GPUs)...
    watched = merge(NAMESPACED_RULES, CLUSTER_RULES, {("kopf.dev", "kopfpeerings"): PEERING_RULE},
                    {("", "pods"): {"list", "watch"}})
    assert extra_rights(e.kubectl, SA_USER, NAMESPACE) == kubectl_names(watched)
    # ...and elsewhere only the cluster-scoped ones, QueueWorkers (list, watch, patch: in the
    # ClusterRole so that a namespace's deletion cannot strand their finalizer) and pod
    # reads: no Deployment, no Secret.
    elsewhere = merge(CLUSTER_RULES, {("", "pods"): {"list", "watch"}})
    assert extra_rights(e.kubectl, SA_USER, "default") == kubectl_names(elsewhere)

    op = e.start_as_sa()
    wait_until("the operator's liveness endpoint", op.healthy, 30, op.log)
    e.apply_qw("sa-scaled", "sa-jobs", max_replicas=4)
    wait_until("the Deployment built by the ServiceAccount", lambda: e.get(
        "deployment", "sa-scaled"), 30, op.log)
    producer = Producer(e.redis)
    for n in range(10):
        producer.enqueue("sa-jobs", {"n": n})
    wait_until("2 replicas for 10 jobs", lambda: e.replicas("sa-scaled") == 2, 30, op.log)
    wait_until("status written by the ServiceAccount", lambda: (
        (e.get("qw", "sa-scaled") or {}).get("status") or {}).get("desiredReplicas") == 2,
        30, op.log)
    qw = e.get("qw", "sa-scaled") or {}
    assert FINALIZER in qw["metadata"].get("finalizers", [])
    assert not forbidden_lines(op.text()), forbidden_lines(op.text())


def test_upgrade_to_two_peered_replicas_and_the_standby_takes_over(env: Env) -> None:
    e = env
    (first,) = e.operators
    e.helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reuse-values",
           "--set=replicaCount=2", f"--set=operator.extraArgs={{--peering-lifetime={LIFETIME}}}")
    status = json.loads(e.helm("status", RELEASE, "-n", SYSTEM, "-o", "json"))
    assert status["version"] == 2
    assert status["info"]["status"] == "deployed"
    args = e.operator_args()
    assert "--peering=queueworker-operator" in args
    assert "--standalone" not in args
    assert e.get("kopfpeering", "queueworker-operator") is not None
    assert e.get("poddisruptionbudget", FULLNAME, SYSTEM) is not None

    first.stop()  # the standalone one goes, as the upgraded Deployment's rollout would
    active = e.start_as_sa("--priority=200", label="active")
    standby = e.start_as_sa("--priority=100", label="standby")
    wait_until("the active peer polls", lambda: active.acts_on(NAMESPACE, "sa-scaled"), 30,
               active.log)
    wait_until("the standby peer is up", standby.healthy, 30, standby.log)
    time.sleep(2)  # several polls: the standby must stay paused
    assert not standby.acts_on(NAMESPACE, "sa-scaled"), "the standby acted"

    active.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    producer = Producer(e.redis)
    for n in range(10, 20):
        producer.enqueue("sa-jobs", {"n": n})
    wait_until("the standby scales to 4", lambda: e.replicas("sa-scaled") == 4,
               LIFETIME + 30, standby.log)
    took = time.monotonic() - killed_at
    print(f"standby took over in {took:.1f}s")  # shown with -s
    # Within one peering lifetime (the dead peer's last keep-alive expires), plus a
    # few polls and requests on a loaded machine.
    assert took < LIFETIME + 15, f"takeover took {took:.1f}s"
    assert standby.acts_on(NAMESPACE, "sa-scaled")
    assert not forbidden_lines(standby.text()), forbidden_lines(standby.text())


def test_watched_namespace_deleted_with_a_live_queueworker_completes_then_uninstall(
        env: Env) -> None:
    e = env
    live = [op for op in e.operators if op.proc.poll() is None]
    assert live, "no operator left running"
    qw = e.get("qw", "sa-scaled") or {}
    assert FINALIZER in qw["metadata"].get("finalizers", []), "no live QueueWorker"
    assert e.get("deployment", "sa-scaled") is not None
    assert not forbidden_lines("".join(op.text() for op in e.operators))
    # 1. The namespace controller deletes a namespace's contents in no set order; the
    #    worst is the operator's Role and RoleBinding before the QueueWorker. Take them
    #    first, then delete the namespace: the operator must still release its finalizer
    #    (the ClusterRole's QueueWorker rights), or the namespace stays Terminating.
    e.kubectl.run("delete", "rolebinding,role", FULLNAME, "-n", NAMESPACE)
    e.kubectl.run("delete", "namespace", NAMESPACE, "--wait=false")
    wait_until("the watched namespace gone, its QueueWorker's finalizer released",
               lambda: e.get("namespace", NAMESPACE, "") is None, 120, live[0].log)
    assert all(op.proc.poll() is None for op in live), "an operator died"

    # 2. Then the operator: `helm uninstall` removes all but the CRDs.
    for op in live:
        op.stop()
    e.helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout=60s")
    for kind, name, ns in (("deployment", FULLNAME, SYSTEM), ("serviceaccount", FULLNAME, SYSTEM),
                           ("clusterrole", FULLNAME, ""), ("clusterrolebinding", FULLNAME, ""),
                           ("clusterrole", f"{FULLNAME}-edit", "")):
        assert e.get(kind, name, ns) is None, f"{kind} {name} left after uninstall"
    assert e.get("crd", "queueworkers.queueworker.dev", "") is not None, "Helm deleted the CRD"

    # 3. The release's namespace deletes completely (nothing left holding it).
    e.kubectl.run("delete", "namespace", SYSTEM, "--wait=false")
    wait_until("the release's namespace gone", lambda: e.get("namespace", SYSTEM, "") is None, 90)
