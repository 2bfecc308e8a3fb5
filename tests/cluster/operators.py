"""`queueworker operator` processes for the suites against the real control plane.

One place for what e2e_helm, e2e_gpu, e2e_faults and the control-plane benchmark
share: start an operator as a process (with the admin kubeconfig or a ServiceAccount
token's), stop it, read its metrics, and write a token kubeconfig.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.controlplane import ROOT
from cluster.pki import PKI
from support.redis_server import free_port


@dataclass
class Operator:
    """One running `queueworker operator` process and where it reports."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    health_port: int

    def metrics(self) -> str:
        """The /metrics text, or "" while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as resp:
                text: str = resp.read().decode()
                return text
        except OSError:
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz",
                                        timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def acts_on(self, namespace: str, name: str) -> bool:
        """True once this process polls that QueueWorker (a standby peer does not)."""
        series = f'queueworker_desired_replicas{{namespace="{namespace}",queueworker="{name}"}}'
        return series in self.metrics()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def chart_args(args: Sequence[str]) -> list[str]:
    """The chart's operator arguments with this machine's free ports in place of the
    container's (two processes here cannot both listen on 8080 and 9090)."""
    out = [a for a in args if not a.startswith(("--liveness=", "--metrics-port="))]
    if out and out[0] == "operator":  # the image's ENTRYPOINT is `queueworker`
        out = out[1:]
    return out


def start_operator(kubeconfig: Path, args: Sequence[str], log: Path,
                   extra_env: dict[str, str] | None = None) -> Operator:
    """`queueworker operator ARGS` with KUBECONFIG; metrics and liveness on free ports."""
    metrics_port, health_port = free_port(), free_port()
    argv = [sys.executable, "-m", "queueworker.cli", "operator", *args,
            "--metrics-port", str(metrics_port),
            "--liveness", f"http://127.0.0.1:{health_port}/healthz"]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(extra_env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
    return Operator(proc, log, metrics_port, health_port)


def token_kubeconfig(path: Path, server: str, pki: PKI, user: str, token: str) -> Path:
    """A kubeconfig that authenticates with a bearer token only (no client cert)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "test", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(pki.ca_crt.read_bytes()).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": user}}],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
