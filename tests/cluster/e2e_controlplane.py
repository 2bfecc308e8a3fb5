"""The control plane itself: real API server with RBAC, controllers and scheduler.

Named e2e_*.py so the unit run (`make test`) does not collect it; `make e2e`
passes it to pytest by path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet

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
    assert forbidden.returncode != 0
    assert "Forbidden" in forbidden.stderr


def test_deployment_is_scheduled_onto_a_fake_gpu_node(kubectl: Kubectl, kubelet: Kubelet,
                                                       control_plane: ControlPlane) -> None:
    kubelet.add_node("fake-gpu-0", gpus=4)
    node = json.loads(kubectl.run("get", "node", "fake-gpu-0", "-o", "json").stdout)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert not node["spec"].get("taints"), "a taint would keep every pod off the node"
    kubectl.run("create", "namespace", "cp-smoke")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gpu", "namespace": "cp-smoke"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "gpu"}}, "template": {
            "metadata": {"labels": {"app": "gpu"}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "fake-gpu-0"},
                     "containers": [{"name": "w", "image": "none", "resources": {
                         "limits": {"nvidia.com/gpu": "3"}}}]}}},
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(deployment))
    # Deployment -> ReplicaSet -> Pods (controller manager), then the scheduler
    # binds one pod; 2 x 3 GPUs do not fit on 4, so the other stays Pending.
    args = ["get", "pods", "-n", "cp-smoke", "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{'/'}{.status.phase}{'|'}{end}"]
    wait_for(kubectl, args, "fake-gpu-0/Running|")
    time.sleep(2)
    out = kubectl.run(*args).stdout
    assert sorted(out.split("|")[:-1]) == ["/Pending", "fake-gpu-0/Running"], out
    # The harness's kubelet removes the bound pod (its container is emulated), so
    # the namespace finishes terminating.
    kubectl.run("delete", "namespace", "cp-smoke", "--wait=true", timeout=90)
    assert control_plane.get("/api/v1/namespaces/cp-smoke") == 404
