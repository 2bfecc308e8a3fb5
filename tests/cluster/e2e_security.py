"""No confused deputy, against the real API server, authorizer and the real operator.

The operator creates pods and reads Secrets for whoever may write a QueueWorker. Here a
user, ``alice``, holds only the chart's QueueWorker rights in one namespace (impersonated
with ``kubectl --as``, checked by the real RBAC authorizer): she may not create pods nor
Deployments nor read Secrets herself, and through the operator she gets

- no privileged, host-namespace or hostPath pod (``--refuse-privileged``, the CLI and chart
  default): SpecValid False, no Deployment;
- no use of a Secret that has not opted in (``queueworker.dev/use: "true"``): SpecValid
  False, reason SecretNotOptedIn, and nothing reaches the Redis host she named (a TCP
  listener recording every byte);

while an ordinary QueueWorker of hers is served (so the refusals are not a broken setup).
The chart's ClusterRoles aggregate into the built-in admin/edit/view roles (the
controller manager's clusterrole-aggregation controller fills them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl
from cluster.wait import wait_until
from support.chart_tools import helm
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "queueworker-operator"
NAMESPACE = "qw-security"
RELEASE = "qw"
ALICE = "alice"  # only QueueWorker rights (the chart's edit role, bound here)
SECRET_VALUE = "not-alices-pa55word"


@dataclass
class Listener:
    """A TCP server on loopback that records every byte sent to it."""

    sock: socket.socket = field(default_factory=socket.socket)
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    def start(self) -> int:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        threading.Thread(target=self._serve, daemon=True).start()
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(4096):
                        self.received.extend(data)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@dataclass
class Env:
    kubectl: Kubectl
    redis_url: str
    log: Path

    def as_alice(self, *args: str, stdin: str | None = None, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        return self.kubectl.run(f"--as={ALICE}", *args, stdin=stdin, check=check)

    def can_i(self, user: str, verb: str, resource: str) -> bool:
        """The real authorizer's answer; ``resource`` may be ``plural.group/subresource``
        (kubectl itself would read what follows the slash as an object name)."""
        resource, _, sub = resource.partition("/")
        extra = [f"--subresource={sub}"] if sub else []
        proc = self.kubectl.run("auth", "can-i", verb, resource, *extra, "-n", NAMESPACE,
                                f"--as={user}", check=False)
        return proc.stdout.strip() == "yes"

    def create_qw_as_alice(self, name: str, spec: dict[str, Any]) -> None:
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
        self.as_alice("create", "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        qw = self.get("qw", name) or {}
        for cond in (qw.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                c: dict[str, Any] = cond
                return c
        return None

    def refused(self, name: str) -> dict[str, Any]:
        cond: dict[str, Any] = wait_until(
            f"SpecValid=False on {name}",
            lambda: (self.condition(name, "SpecValid") or {}).get("status") == "False"
            and self.condition(name, "SpecValid"), 30, self.log)
        return cond

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl.run("get", "events", "-n", NAMESPACE, "-o", "json",
                               f"--field-selector=involvedObject.name={name}").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


def spec(redis_url: str, template_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    container = {"name": "worker", "image": "example.org/worker:1"}
    return {
        "redis": {"url": redis_url},
        "queues": [{"name": "jobs"}],
        "scaling": {"pollIntervalSeconds": 0.5, "minReplicas": 0, "maxReplicas": 1},
        "template": {"spec": template_spec or {"containers": [container]}},
    }


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    # The chart's ClusterRoles for people, as Helm renders them.
    roles = helm("template", RELEASE, str(CHART), "--namespace", "qw-system",
                 "--show-only", "templates/aggregate-roles.yaml").stdout
    kubectl.run("apply", "-f", "-", stdin=roles)
    kubectl.run("create", "namespace", NAMESPACE)
    for user, role in ((ALICE, f"{RELEASE}-queueworker-operator-edit"),
                       ("bob", "edit"), ("carol", "view")):
        kubectl.run("create", "rolebinding", f"{user}-{role}", "-n", NAMESPACE,
                    f"--clusterrole={role}", f"--user={user}")
    server = RedisServer().start()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "queueworker.cli", "operator", "--standalone",
             "--namespace", NAMESPACE, "--metrics-port", "0", "--status-refresh", "1",
             "--log-format", "plain"],  # --refuse-privileged: the default
            env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield Env(kubectl, server.url, log)
        # The QueueWorkers carry the operator's finalizer: delete them while it runs.
        kubectl.run("delete", "qw", "--all", "-n", NAMESPACE, "--wait=true", timeout=120)
    finally:
        operator.terminate()
        try:
            operator.wait(20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        kubectl.run("delete", "-f", "-", "--ignore-not-found", stdin=roles, check=False)
        server.cleanup()


def test_queueworker_rights_follow_the_usual_pod_rights(env: Env) -> None:
    e = env
    # alice: QueueWorkers only. The real authorizer says so.
    assert e.can_i(ALICE, "create", "queueworkers.queueworker.dev")
    assert e.can_i(ALICE, "patch", "queueworkers.queueworker.dev/scale")
    for verb, resource in (("create", "pods"), ("create", "deployments.apps"),
                           ("get", "secrets"), ("patch", "queueworkers.queueworker.dev/status")):
        assert not e.can_i(ALICE, verb, resource), f"alice may {verb} {resource}"
    # The built-in roles, filled by aggregation: edit writes QueueWorkers, view reads them.
    wait_until("edit aggregates the chart's role",
               lambda: e.can_i("bob", "create", "queueworkers.queueworker.dev"), 30)
    assert e.can_i("bob", "delete", "queueworkers.queueworker.dev")
    wait_until("view aggregates the chart's role",
               lambda: e.can_i("carol", "list", "queueworkers.queueworker.dev"), 30)
    assert not e.can_i("carol", "create", "queueworkers.queueworker.dev")
    assert not e.can_i("carol", "patch", "queueworkers.queueworker.dev/scale")


def test_no_privileged_or_host_pod_through_the_operator(env: Env) -> None:
    e = env
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "direct", "namespace": NAMESPACE},
           "spec": {"containers": [{"name": "c", "image": "example.org/x:1",
                                    "securityContext": {"privileged": True}}]}}
    direct = e.as_alice("create", "-f", "-", stdin=json.dumps(pod), check=False)
    assert direct.returncode != 0
    assert "forbidden" in direct.stderr.lower()

    # A plain QueueWorker of hers is served: the operator builds its Deployment.
    e.create_qw_as_alice("plain", spec(e.redis_url))
    wait_until("the plain QueueWorker's Deployment", lambda: e.get("deployment", "plain"),
               30, e.log)

    privileged = {"containers": [{"name": "worker", "image": "example.org/worker:1",
                                  "securityContext": {"privileged": True}}]}
    host_path = {"containers": [{"name": "worker", "image": "example.org/worker:1",
                                 "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
                 "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    host_ns = {"hostPID": True, "containers": [{"name": "worker",
                                                "image": "example.org/worker:1"}]}
    for name, template, field_ in (("privileged", privileged, "privileged"),
                                   ("hostpath", host_path, "hostPath"),
                                   ("hostpid", host_ns, "hostPID")):
        e.create_qw_as_alice(name, spec(e.redis_url, template))
        cond = e.refused(name)
        assert cond["reason"] == "InvalidSpec", cond
        assert field_ in cond["message"], cond
        assert "refused" in cond["message"], cond
    time.sleep(2)  # a few polls more: still nothing built
    for name in ("privileged", "hostpath", "hostpid"):
        assert e.get("deployment", name) is None, f"{name}: a Deployment was built"
    pods = json.loads(e.kubectl.run("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)
    assert pods["items"] == []


def test_secret_without_opt_in_is_refused_and_never_sent(env: Env) -> None:
    e = env
    e.kubectl.run("create", "secret", "generic", "not-alices", "-n", NAMESPACE,
                  f"--from-literal=password={SECRET_VALUE}")
    assert e.as_alice("get", "secret", "not-alices", "-n", NAMESPACE,
                      check=False).returncode != 0
    listener = Listener()
    port = listener.start()
    try:
        qw = spec(f"redis://127.0.0.1:{port}/0")
        qw["redis"]["passwordSecretRef"] = {"name": "not-alices", "key": "password"}
        e.create_qw_as_alice("deputy", qw)
        cond = e.refused("deputy")
        assert cond["reason"] == "SecretNotOptedIn", cond
        assert f"{NAMESPACE}/not-alices" in cond["message"]
        assert "queueworker.dev/use" in cond["message"]
        wait_until("a SecretNotOptedIn Event", lambda: any(
            ev["reason"] == "SecretNotOptedIn" for ev in e.events("deputy")), 15, e.log)
        time.sleep(2)  # a few polls more
        assert e.get("deployment", "deputy") is None
        assert listener.connections == 0
        assert SECRET_VALUE.encode() not in bytes(listener.received)
        everything = (json.dumps(e.get("qw", "deputy")) + json.dumps(e.events("deputy"))
                      + e.log.read_text())
        assert SECRET_VALUE not in everything
    finally:
        listener.close()
