"""The operator against the real control plane: reaction time, CPU and RSS at 200 QueueWorkers.

    bash scripts/build-control-plane.sh >/dev/null      # once (make control-plane)
    .venv/bin/python benchmarks/controlplane/bench_controlplane.py \
        [--queueworkers 200 --busy 20 --poll 2 --warmup 30 --measure 90 --trials 40]

One run, on a cluster of its own (tests/cluster: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler built from their Go modules, and the harness's
kubelet with one fake Node whose pods are emulated, no process):

- N QueueWorkers (native queues on one real redis-server); `--busy` of them get a
  backlog that changes every second, so they keep scaling (real Deployments,
  ReplicaSets, scheduled pods); the rest stay idle at 0 replicas;
- the real `queueworker operator` CLI in its own process (admin kubeconfig), so only it
  is measured: CPU from /proc/PID/stat over the window after a warm-up, RSS from
  /proc/PID/status; the API server's and etcd's CPU over the same window;
- meanwhile, reaction trials on 8 more QueueWorkers at 0 replicas: at a random phase
  of the poll, 5 jobs are pushed, and the time until the Deployment's `spec.replicas`
  is seen above 0 (a watch on Deployments, on this machine's clock) is one sample.

The same figures against the kmock emulator: benchmarks/operator/bench_operator.py.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks" / "operator"))

import redis  # noqa: E402
from bench_operator import api_calls, pct, proc_cpu_seconds, proc_mem_mb  # noqa: E402

from cluster.controlplane import ControlPlane  # noqa: E402
from cluster.kubeapi import ApiError, KubeApi  # noqa: E402
from cluster.kubelet import Kubelet  # noqa: E402
from support.redis_server import RedisServer, free_port  # noqa: E402

NAMESPACE = "bench"
LATENCY_QWS = 8


def qw(name: str, redis_url: str, poll: float, **scaling: Any) -> dict[str, Any]:
    return {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"redis": {"url": redis_url}, "queues": [{"name": name}],
                     "scaling": {"pollIntervalSeconds": poll, "minReplicas": 0, **scaling},
                     "drain": {"graceSeconds": 2, "deadlineMarginSeconds": 1},
                     "template": {"spec": {"containers": [
                         {"name": "worker", "image": "example.org/worker:1"}]}}}}


class Replicas:
    """spec.replicas of every Deployment in the namespace, from a watch."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.now: dict[str, int] = {}
        self.stopped = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        while not self.stopped.is_set():
            try:
                listed = self.api.get(path)
                for dep in listed["items"]:
                    self.now[dep["metadata"]["name"]] = int(dep["spec"].get("replicas", 1))
                for ev in self.api.watch(path, listed["metadata"]["resourceVersion"], 30):
                    if ev.get("type") in ("ADDED", "MODIFIED"):
                        obj = ev["object"]
                        self.now[obj["metadata"]["name"]] = int(obj["spec"].get("replicas", 1))
            except ApiError:
                time.sleep(0.2)

    def wait(self, name: str, ok: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ok(self.now.get(name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: replicas {self.now.get(name)}")
            time.sleep(0.005)


def churn(r: redis.Redis, busy: list[str], stop: threading.Event) -> None:
    """Busy queues change every second, so their loops keep deciding and writing."""
    while not stop.is_set():
        for name in busy:
            key = f"qw:{{{name}}}:waiting"
            r.lpush(key, *[f"{int(time.time() * 1000):013d}-{k}"
                           for k in range(random.randint(1, 20))])
            if random.random() < 0.5:
                r.ltrim(key, 0, random.randint(0, 40))
        stop.wait(1.0)


def trials(r: redis.Redis, seen: Replicas, names: list[str], count: int, poll: float,
           until: float) -> list[float]:
    samples: list[float] = []
    for trial in range(count):
        if time.monotonic() > until:
            break
        name = names[trial % len(names)]
        seen.wait(name, lambda v: v == 0, 60)
        time.sleep(random.uniform(0, poll))  # a random phase of the poll
        r.lpush(f"qw:{{{name}}}:waiting", *[f"{int(time.time() * 1000):013d}-{k}"
                                          for k in range(5)])
        t0 = time.monotonic()
        seen.wait(name, lambda v: (v or 0) > 0, 60)
        samples.append(time.monotonic() - t0)
        r.delete(f"qw:{{{name}}}:waiting")
    return samples


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="qw-bench-cp-"))
    plane = ControlPlane(workdir).start()
    kubelet = Kubelet(plane.api(), workdir / "kubelet").start()
    server = RedisServer().start()
    proc: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    try:
        api = plane.api()
        kubelet.add_node("bench-0", pods="1000")
        kubectl = [str(ROOT / ".tools" / "bin" / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
        subprocess.run([*kubectl, "apply", "-f", str(ROOT / "crds" / "queueworker.yaml")],
                       check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=30s",
                        "crd/queueworkers.queueworker.dev"], check=True, capture_output=True)
        api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": NAMESPACE}})
        n = args.queueworkers
        names = [f"qw{i:04d}" for i in range(n)]
        busy = names[:: max(1, n // max(1, args.busy))][: args.busy]
        lat = [f"lat{i}" for i in range(LATENCY_QWS)]
        path = f"/apis/queueworker.dev/v1alpha1/namespaces/{NAMESPACE}/queueworkers"
        for name in names:
            api.request("POST", path, qw(name, server.url, args.poll, maxReplicas=5,
                                         targetBacklogPerReplica=10))
        for name in lat:
            api.request("POST", path, qw(name, server.url, args.poll, maxReplicas=5,
                                         idleSecondsBeforeZero=0,
                                         scaleDown={"stabilizationSeconds": 0}))
        seen = Replicas(api)
        metrics_port = free_port()
        with open(workdir / "operator.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "queueworker.cli", "operator", "--namespace", NAMESPACE,
                 "--standalone", "--metrics-port", str(metrics_port), "--log-level", "warning"],
                env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)}, stdout=log,
                stderr=subprocess.STDOUT, cwd=ROOT)
        started = time.monotonic()
        while sum(1 for x in names + lat if x in seen.now) < n + LATENCY_QWS:
            if time.monotonic() - started > 600:
                raise TimeoutError("Deployments not all created")
            time.sleep(0.5)
        print(f"{n + LATENCY_QWS} Deployments created in {time.monotonic() - started:.1f}s")
        r = redis.Redis.from_url(server.url)
        threading.Thread(target=churn, args=(r, busy, stop), daemon=True).start()
        time.sleep(args.warmup)

        others = {name: plane.procs[name].pid for name in ("kube-apiserver", "etcd")}
        calls0 = api_calls(metrics_port)
        cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
        other0 = {k: proc_cpu_seconds(p) for k, p in others.items()}
        samples = trials(r, seen, lat, args.trials, args.poll, t0 + args.measure)
        time.sleep(max(0.0, t0 + args.measure - time.monotonic()))
        cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
        other1 = {k: proc_cpu_seconds(p) for k, p in others.items()}
        rss, hwm = proc_mem_mb(proc.pid)
        calls1 = api_calls(metrics_port)
        stop.set()
        window = t1 - t0
        for op, count in sorted(calls1.items()):
            print(f"  {op}: {(count - calls0.get(op, 0)) / window:.1f}/s")
        scaled = sum(1 for x in busy if (seen.now.get(x) or 0) > 0)
        print(f"{n} QueueWorkers (+{LATENCY_QWS} for the trials) at poll {args.poll}s, "
              f"{len(busy)} with changing backlog ({scaled} scaled up at the end): operator "
              f"CPU {(cpu1 - cpu0) / window:.3f} cores over {window:.0f}s, RSS {rss:.0f} MB "
              f"(peak {hwm:.0f} MB); " + ", ".join(
                  f"{k} {(other1[k] - other0[k]) / window:.3f} cores" for k in others))
        p50, p95 = pct(samples, 0.5), pct(samples, 0.95)
        print(f"reaction backlog->replicas patched, poll {args.poll}s, {len(samples)} trials: "
              f"p50 {p50:.3f}s ({p50 / args.poll:.2f} polls), p95 {p95:.3f}s "
              f"({p95 / args.poll:.2f} polls), max {max(samples):.3f}s, "
              f"mean {statistics.mean(samples):.3f}s")
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        kubelet.close()
        plane.stop()
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queueworkers", type=int, default=200)
    p.add_argument("--busy", type=int, default=20)
    p.add_argument("--poll", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=30.0)
    p.add_argument("--measure", type=float, default=90.0)
    p.add_argument("--trials", type=int, default=40)
    run(p.parse_args())


if __name__ == "__main__":
    main()
