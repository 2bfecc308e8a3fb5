"""Fixtures for the tests that run against the real control plane.

The binaries come from scripts/build-control-plane.sh; `make control-plane`
builds them ahead (a cold build takes minutes, longer than one test's timeout).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl, kubectl_binary
from cluster.kubelet import Kubelet


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One control plane for the whole session; tests use their own namespaces."""
    workdir = Path(tempfile.mkdtemp(prefix="qw-cluster-"))
    plane = ControlPlane(workdir).start()
    yield plane
    plane.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[Kubelet]:
    """The harness's kubelet; tests add the fake Nodes they need (`add_node`).
    It must outlive every test's namespace cleanup, or bound pods (and with them
    their namespaces) stay Terminating: session scope, torn down before the
    control plane."""
    kube = Kubelet(control_plane.api(), control_plane.workdir / "kubelet").start()
    yield kube
    kube.close()


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Iterator[Kubectl]:
    return Kubectl(kubectl_binary(), control_plane.kubeconfig)
