"""kubectl as the admin of the test cluster (the binary from .tools/bin)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from cluster.controlplane import ROOT


def kubectl_binary() -> str:
    local = ROOT / ".tools" / "bin" / "kubectl"
    if not local.is_file():
        raise RuntimeError("kubectl not found: run `make setup` (scripts/ensure-helm.sh)")
    return str(local)


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
