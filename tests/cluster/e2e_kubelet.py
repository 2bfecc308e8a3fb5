"""The harness's kubelet against the real API server and scheduler: pods run as
local processes with their env, report Ready, and are stopped on deletion the
way the real kubelet stops them (SIGTERM, grace period, SIGKILL, DELETE grace 0).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.wait import wait_until

# A container: writes its env to $OUT, then waits; on SIGTERM it notes it and
# exits after TERM_DELAY seconds, or never when TERM_DELAY is "never".
PROGRAM = """
import os, signal, sys, time
out = os.environ["OUT"]
def term(*_):
    open(out + ".term", "w").write("term")
    if os.environ["TERM_DELAY"] != "never":
        time.sleep(float(os.environ["TERM_DELAY"]))
        sys.exit(0)
signal.signal(signal.SIGTERM, term)
keys = ("POD_NAME", "POD_NS", "NODE", "PASSWORD", "PLAIN", "LABEL", "FROM_pw", "PRIO")
env = {k: os.environ.get(k) for k in keys}
env["pid"] = os.getpid()
open(out + ".tmp", "w").write(__import__("json").dumps(env))
os.replace(out + ".tmp", out)
while True:
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def node(kubelet: Kubelet) -> str:
    kubelet.add_node("kubelet-node-0", gpus=4)
    return "kubelet-node-0"


def pod(name: str, node: str, out: Path, *, term_delay: str = "0.3", grace: int = 10,
        gpus: int = 0) -> dict[str, Any]:
    env = [
        {"name": "OUT", "value": str(out)}, {"name": "TERM_DELAY", "value": term_delay},
        {"name": "PLAIN", "value": "plain-value"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "pw"}}},
    ]
    env_from = [{"secretRef": {"name": "redis"}, "prefix": "FROM_"},
                {"configMapRef": {"name": "settings"}}]
    container: dict[str, Any] = {"name": "c", "image": "python", "command": [sys.executable],
                                 "args": ["-c", PROGRAM], "env": env, "envFrom": env_from}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kl", "labels": {"app": "probe"}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "terminationGracePeriodSeconds": grace, "containers": [container]}}


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, kubelet: Kubelet) -> Any:
    kubectl.run("create", "namespace", "kl")
    kubectl.run("create", "secret", "generic", "redis", "-n", "kl", "--from-literal=pw=s3cret")
    kubectl.run("create", "configmap", "settings", "-n", "kl", "--from-literal=PRIO=high",
                "--from-literal=PLAIN=overridden-by-env")
    yield "kl"
    kubectl.run("delete", "namespace", "kl", "--wait=true", timeout=120)


def get_pod(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    proc = kubectl.run("get", "pod", name, "-n", "kl", "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def condition(pod: dict[str, Any] | None, kind: str) -> str:
    for cond in (pod or {}).get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return str(cond["status"])
    return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def test_pod_runs_with_its_env_reports_ready_and_stops_on_sigterm(
        kubectl: Kubectl, node: str, namespace: str, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(pod("env", node, out)))
    wait_until("the container's env file", out.exists)
    env = json.loads(out.read_text())
    assert env["POD_NAME"] == "env"
    assert env["POD_NS"] == "kl"
    assert env["NODE"] == node
    assert env["PASSWORD"] == "s3cret"
    assert env["PLAIN"] == "plain-value"
    assert env["LABEL"] == "probe"
    assert env["FROM_pw"] == "s3cret"
    assert env["PRIO"] == "high"
    wait_until("Ready", lambda: condition(get_pod(kubectl, "env"), "Ready") == "True")
    status = (get_pod(kubectl, "env") or {})["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert condition(get_pod(kubectl, "env"), "PodScheduled") == "True"  # kept by the merge

    started = time.monotonic()
    kubectl.run("delete", "pod", "env", "-n", "kl", "--wait=true", timeout=60)
    assert time.monotonic() - started < 8, "the pod should go once its process exits"
    assert (tmp_path / "env.json.term").exists(), "the process got no SIGTERM"
    assert not alive(env["pid"])


def test_sigkill_after_the_grace_period(kubectl: Kubectl, node: str, namespace: str,
                                        tmp_path: Path) -> None:
    out = tmp_path / "stubborn.json"
    spec = pod("stubborn", node, out, term_delay="never", grace=2)
    kubectl.run("apply", "-f", "-", stdin=json.dumps(spec))
    wait_until("the container's env file", out.exists)
    pid = json.loads(out.read_text())["pid"]
    started = time.monotonic()
    kubectl.run("delete", "pod", "stubborn", "-n", "kl", "--wait=true", timeout=60)
    took = time.monotonic() - started
    assert 1.5 < took < 8, f"deleted after {took:.1f}s; grace was 2s"
    assert (tmp_path / "stubborn.json.term").exists()
    assert not alive(pid)


def test_a_terminating_pod_keeps_its_gpus_until_it_is_gone(
        kubectl: Kubectl, node: str, namespace: str, tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(
        pod("gpu-first", node, first, term_delay="3", gpus=4)))
    wait_until("the first pod's process", first.exists)
    kubectl.run("delete", "pod", "gpu-first", "-n", "kl", "--wait=false")
    kubectl.run("apply", "-f", "-", stdin=json.dumps(pod("gpu-second", node, second, gpus=4)))
    time.sleep(1.5)
    waiting = get_pod(kubectl, "gpu-second") or {}
    assert not waiting["spec"].get("nodeName"), "scheduled while the GPUs were still held"
    assert get_pod(kubectl, "gpu-first") is not None
    wait_until("the second pod's process", second.exists, timeout=40)
    assert get_pod(kubectl, "gpu-first") is None
    kubectl.run("delete", "pod", "gpu-second", "-n", "kl", "--wait=true", timeout=60)


def one_shot(name: str, node: str, args: list[str], policy: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kl"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "restartPolicy": policy,
                     "containers": [{"name": "c", "image": "queueworker", "args": args}]}}


def test_queueworker_commands_run_and_exit_codes_set_the_phase(
        kubectl: Kubectl, node: str, namespace: str) -> None:
    # `queueworker ...` runs this checkout's CLI; exit 0 -> Succeeded, else Failed.
    kubectl.run("apply", "-f", "-", stdin=json.dumps(
        one_shot("crd", node, ["queueworker", "crd"], "Never")))
    kubectl.run("apply", "-f", "-", stdin=json.dumps(
        one_shot("bad", node, ["queueworker", "validate", "/nonexistent.yaml"], "Never")))
    kubectl.run("apply", "-f", "-", stdin=json.dumps(
        one_shot("again", node, ["queueworker", "validate", "/nonexistent.yaml"], "OnFailure")))

    def phase(name: str) -> str:
        return str(((get_pod(kubectl, name) or {}).get("status") or {}).get("phase"))

    wait_until("crd Succeeded", lambda: phase("crd") == "Succeeded")
    wait_until("bad Failed", lambda: phase("bad") == "Failed")
    bad = (get_pod(kubectl, "bad") or {})["status"]["containerStatuses"][0]
    assert bad["state"]["terminated"]["exitCode"] != 0
    assert condition(get_pod(kubectl, "bad"), "Ready") == "False"

    def restarts() -> int:
        statuses = ((get_pod(kubectl, "again") or {}).get("status") or {}).get(
            "containerStatuses") or [{}]
        return int(statuses[0].get("restartCount", 0))

    wait_until("a restart under OnFailure", lambda: restarts() >= 2)
    assert phase("again") == "Running"
    for name in ("crd", "bad", "again"):
        kubectl.run("delete", "pod", name, "-n", "kl", "--wait=true", timeout=60)
