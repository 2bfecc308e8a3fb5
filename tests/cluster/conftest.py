"""Fixtures for the tests that run against the real control plane.

The binaries come from scripts/build-control-plane.sh; `make control-plane`
builds them ahead (a cold build takes minutes, longer than one test's timeout).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cluster.controlplane import ROOT, ControlPlane
from cluster.kubelet import Kubelet


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One control plane for the whole session; tests use their own namespaces."""
    plane = ControlPlane(Path(tempfile.mkdtemp(prefix="qw-cluster-"))).start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[Kubelet]:
    """The harness's kubelet; tests add the fake Nodes they need (`add_node`).
    It must outlive every test's namespace cleanup, or bound pods (and with them
    their namespaces) stay Terminating: session scope, torn down before the
    control plane."""
    kube = Kubelet(control_plane.api(), control_plane.workdir / "kubelet").start()
    yield kube
    kube.close()


def kubectl_binary() -> str:
    local = ROOT / ".tools" / "bin" / "kubectl"
    if not local.is_file():
        raise RuntimeError("kubectl not found: run `make setup` (scripts/ensure-helm.sh)")
    return str(local)


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Iterator[Kubectl]:
    yield Kubectl(kubectl_binary(), control_plane.kubeconfig)


class Kubectl:
    """Runs kubectl as the admin of the test cluster."""

    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd: Sequence[str] = [self.binary, f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr}")
        return proc
