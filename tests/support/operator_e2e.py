"""End to end for the operator: pods of the emulated cluster are real worker processes.

``ProcessRuntime`` is a container runtime for the harness's kubelet
(support/kube_kubelet.py): when a pod starts Running it runs the pod's first
container as a local process (``queueworker worker ...`` with the container's
env, the pod name from the downward API); when the pod is deleted the kubelet
sends that process SIGTERM, removes the pod once it has exited, or sends
SIGKILL after the pod's grace period. A pod whose container is not a
``queueworker`` command runs nothing and stops at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]


class ProcessRuntime:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[str, int] = {}
        self.started = 0

    def command(self, pod: dict[str, Any]) -> list[str] | None:
        """The process of a pod, or None when it runs nothing here."""
        args = list((pod["spec"]["containers"][0]).get("args") or [])
        if args[:1] != ["queueworker"]:
            return None
        return [sys.executable, "-m", "queueworker.cli", *args[1:]]

    def start(self, namespace: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        argv = self.command(pod)
        if argv is None or name in self.procs:
            return
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        for item in pod["spec"]["containers"][0].get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == \
                    "metadata.name":
                env[item["name"]] = name
        self.procs[name] = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        self.started += 1

    def stop(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def exited(self, name: str) -> bool:
        proc = self.procs.get(name)
        if proc is None:
            return True
        code = proc.poll()
        if code is not None:
            self.exit_codes[name] = code
        return code is not None

    def kill(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.kill()
            self.exit_codes[name] = proc.wait()

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
