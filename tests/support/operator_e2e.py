"""End to end for the operator: pods of the emulated cluster are real worker processes.

`ProcessController` is the harness's Deployment controller with one change: every Pod it
creates also starts the pod's first container as a local process (`queueworker worker ...`
with the container's env, the pod name from the downward API), and deleting a Pod sends that
process SIGTERM, as the kubelet does, then SIGKILL after terminationGracePeriodSeconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.operator_cluster import DeploymentController

TESTS = Path(__file__).resolve().parents[1]


class ProcessController(DeploymentController):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[str, int] = {}
        self.started = 0

    async def create_pod(self, ns: str, deployment: str, uid: str, template: dict[str, Any],
                         thash: str) -> None:
        before = {p["metadata"]["name"] for p in self.pods_of(ns, uid)}
        await super().create_pod(ns, deployment, uid, template, thash)
        for pod in self.pods_of(ns, uid):
            name = pod["metadata"]["name"]
            if name not in before and name not in self.procs:
                self._start(name, pod["spec"])

    def _start(self, pod_name: str, spec: dict[str, Any]) -> None:
        container = spec["containers"][0]
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == \
                    "metadata.name":
                env[item["name"]] = pod_name
        args = list(container.get("args") or [])
        assert args[:1] == ["queueworker"], args
        self.procs[pod_name] = subprocess.Popen(
            [sys.executable, "-m", "queueworker.cli", *args[1:]], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started += 1

    async def delete_pod(self, ns: str, pod: dict[str, Any], *, record: bool) -> None:
        await super().delete_pod(ns, pod, record=record)
        name = pod["metadata"]["name"]
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            asyncio.get_running_loop().create_task(self._reap(name, proc, grace))

    async def _reap(self, name: str, proc: subprocess.Popen[bytes], grace: float) -> None:
        try:  # the kubelet's grace period, then SIGKILL
            code = await asyncio.wait_for(asyncio.to_thread(proc.wait), grace)
        except TimeoutError:
            proc.kill()
            code = proc.wait()
        self.exit_codes[name] = code

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
