"""End-to-end metrics harness: a real Prometheus scrapes live exporters, then every
dashboard and alert expression is sent to its query API.

The exporters here are the real thing: `queueworker local` (the operator's
engine with its Prometheus metrics, same names and labels as in a cluster,
namespace "local") and a `queueworker worker` process with `--metrics-port`,
both on a real redis-server, while jobs flow (some fail, some are delayed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.chart_prometheus import Prometheus
from support.chart_tools import ROOT
from support.redis_server import free_port

# The operator (local mode) scales its own worker processes for OPERATOR_QUEUES;
# the worker with a metrics port consumes WORKER_QUEUES, so that every job of
# those goes through the worker whose metrics Prometheus scrapes.
OPERATOR_QUEUES = ("ops-high", "ops")
WORKER_QUEUES = ("e2e-high", "e2e")
HANDLER = "support.chart_e2e_jobs:handle"


NAME = "e2e"
LOCAL_NAMESPACE = "local"  # the namespace label local mode gives its series


def manifest(name: str = NAME) -> dict[str, Any]:
    """The QueueWorker `queueworker local` runs: native workers with our handler."""
    return {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": name},
        "spec": {
            "redis": {"url": "redis://127.0.0.1:1/0"},  # replaced by --redis-url
            "queues": [{"name": q} for q in OPERATOR_QUEUES],
            "scaling": {"minReplicas": 0, "maxReplicas": 3, "targetBacklogPerReplica": 5,
                        "pollIntervalSeconds": 1},
            "drain": {"graceSeconds": 15, "deadlineMarginSeconds": 5},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "example/e2e:0",
                "args": ["queueworker", "worker", "--handler", HANDLER, "--concurrency", "2"],
            }]}},
        },
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The handler module lives in tests/support.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not answering:\n{log.read_text(errors='replace')[-3000:]}")


def enqueue(redis_url: str, queue: str, payload: str, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "queueworker.cli", "enqueue", "--redis-url", redis_url,
                    *extra, queue, payload], check=True, capture_output=True, env=_env(),
                   cwd=ROOT, timeout=60)


@dataclass
class Live:
    prometheus: Prometheus
    operator_port: int
    worker_port: int
    logs: dict[str, Path] = field(default_factory=dict)


@contextmanager
def live_system(redis_url: str, workdir: Path) -> Iterator[Live]:
    """Operator (local mode) + one worker with metrics + Prometheus scraping both."""
    path = workdir / "queueworker.yaml"
    path.write_text(yaml.safe_dump(manifest()), encoding="utf-8")
    operator_port, worker_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = {"operator": workdir / "operator.log", "worker": workdir / "worker.log"}
    # The labels the chart's PodMonitor gives a worker pod's series in a cluster
    # (namespace and pod from service discovery, queueworker from the pod's
    # app.kubernetes.io/instance label), so the Workers dashboard's variables
    # work as they would there.
    worker_labels = {"namespace": LOCAL_NAMESPACE, "queueworker": NAME, "pod": f"{NAME}-worker-0"}
    prometheus = Prometheus({"queueworker-operator": [f"127.0.0.1:{operator_port}"],
                             "queueworker-worker": [f"127.0.0.1:{worker_port}"]},
                            job_options={"queueworker-worker": {"labels": worker_labels}})
    try:
        with open(logs["operator"], "wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "queueworker.cli", "local", "-f", str(path),
                 "--redis-url", redis_url, "--metrics-port", str(operator_port), "--no-ui"],
                stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=workdir))
        with open(logs["worker"], "wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "queueworker.cli", "worker", "--redis-url", redis_url,
                 "--queue", ",".join(WORKER_QUEUES), "--handler", HANDLER, "--concurrency", "2",
                 "--metrics-port", str(worker_port)],
                stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=workdir))
        _wait_http(f"http://127.0.0.1:{operator_port}/metrics", procs[0], logs["operator"])
        _wait_http(f"http://127.0.0.1:{worker_port}/metrics", procs[1], logs["worker"])
        prometheus.start()
        yield Live(prometheus, operator_port, worker_port, logs)
    finally:
        prometheus.cleanup()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def has_data(answer: dict[str, Any]) -> bool:
    """A query answer with at least one sample that is a number (not NaN)."""
    assert answer["status"] == "success", answer
    data = answer["data"]
    if data["resultType"] == "scalar":
        return data["result"][1] not in ("NaN", "+Inf", "-Inf")
    return any(r["value"][1] != "NaN" for r in data["result"])
