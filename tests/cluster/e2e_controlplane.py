"""The control plane itself: real API server with RBAC, controllers and scheduler.

Named e2e_*.py so the unit run (`make test`) does not collect it; `make e2e`
passes it to pytest by path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cluster.conftest import Kubectl
from cluster.controlplane import ControlPlane

VERSIONS = Path(__file__).with_name("versions.env")


def pinned(name: str) -> str:
    for line in VERSIONS.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"{name} missing from {VERSIONS}")


def wait_for(kubectl: Kubectl, args: list[str], want: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = kubectl.run(*args, check=False).stdout
        if want in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"kubectl {' '.join(args)}: no {want!r} after {timeout}s; last: {out!r}")


def test_get_namespaces_and_version(kubectl: Kubectl) -> None:
    names = kubectl.run("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)
    version = json.loads(kubectl.run("version", "-o", "json").stdout)["serverVersion"]
    # Without the -ldflags -X stamping this says v0.0.0-master+$Format:%H$.
    assert version["gitVersion"] == pinned("K8S_VERSION")
    assert version["major"] == "1"


def test_rbac_is_enforced(kubectl: Kubectl) -> None:
    sa = "system:serviceaccount:default:default"
    denied = kubectl.run("auth", "can-i", "list", "pods", f"--as={sa}", check=False)
    assert denied.stdout.strip() == "no"
    assert kubectl.run("auth", "can-i", "list", "pods").stdout.strip() == "yes"
    forbidden = kubectl.run("get", "pods", "-n", "kube-system", f"--as={sa}", check=False)
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr


def test_deployment_is_scheduled_onto_a_fake_gpu_node(kubectl: Kubectl,
                                                       control_plane: ControlPlane) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake-gpu-0"}}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(node))
    resources = {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "4"}
    status = {"status": {"capacity": resources, "allocatable": resources, "conditions": [
        {"type": "Ready", "status": "True", "reason": "FakeKubelet", "message": "test"}]}}
    kubectl.run("patch", "node", "fake-gpu-0", "--subresource=status", "--type=merge",
                "-p", json.dumps(status))
    kubectl.run("create", "namespace", "cp-smoke")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gpu", "namespace": "cp-smoke"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "gpu"}}, "template": {
            "metadata": {"labels": {"app": "gpu"}},
            "spec": {"containers": [{"name": "w", "image": "none", "resources": {
                "limits": {"nvidia.com/gpu": "3"}}}]}}},
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(deployment))
    # Deployment -> ReplicaSet -> Pods (controller manager), then the scheduler
    # binds one pod; 2 x 3 GPUs do not fit on 4, so the other stays Pending.
    args = ["get", "pods", "-n", "cp-smoke", "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{'|'}{end}"]
    out = wait_for(kubectl, args, "fake-gpu-0|")
    time.sleep(2)
    out = kubectl.run(*args).stdout
    assert sorted(out.split("|")[:-1]) == ["", "fake-gpu-0"], out
    # A pod bound to a node waits for its kubelet to confirm the kill; with no
    # kubelet here, force them (grace 0) or the namespace stays Terminating.
    kubectl.run("delete", "namespace", "cp-smoke", "--wait=false")
    deadline = time.monotonic() + 60
    while control_plane.get("/api/v1/namespaces/cp-smoke") != 404:
        assert time.monotonic() < deadline, "namespace cp-smoke still terminating"
        kubectl.run("delete", "pods", "--all", "-n", "cp-smoke", "--grace-period=0", "--force",
                    check=False)
        time.sleep(0.5)
