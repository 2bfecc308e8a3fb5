"""The harness's kubelet: fake Nodes, and pods bound to them run as local processes.

For each pod the real scheduler binds to one of its Nodes, ``Kubelet``:

- runs the pod's first container (``command`` + ``args``) as a local process
  with the container's env (plain values, downward-API fields, Secret and
  ConfigMap keys) and the pod's host name (``HOSTNAME``, and for Python
  processes ``socket.gethostname()``: podhost/sitecustomize.py). ``queueworker ...``
  runs this checkout's CLI with the test interpreter. A command that is not
  found here (an image's entrypoint) runs nothing: the container is emulated
  and stops at once when asked to;
- patches the pod's status to Running and Ready (Ready's lastTransitionTime is
  when it became ready: the ReplicaSet controller ranks scale-down victims on it);
- restarts an exited process per ``restartPolicy`` (with back-off), or reports
  the pod Succeeded/Failed;
- when the pod gets a ``deletionTimestamp``: SIGTERM to the process group, up
  to ``deletionGracePeriodSeconds`` to exit, then SIGKILL, then DELETE with
  grace 0 and a UID precondition, as the real kubelet does once a pod's
  containers are gone. A terminating pod keeps its Node (and its GPUs) until then.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.kubeapi import ApiError, KubeApi, quote

log = logging.getLogger("cluster.kubelet")
NODE_RESOURCES = {"cpu": "16", "memory": "64Gi", "pods": "110"}
TESTS = Path(__file__).resolve().parents[1]
PODHOST = Path(__file__).resolve().parent / "podhost"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_node(api: KubeApi, name: str, gpus: int = 0, **resources: str) -> None:
    """A Ready Node with capacity = allocatable (cpu, memory, pods, nvidia.com/gpu)."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "queueworker.dev/fake-node": "true"}
    with contextlib.suppress(ApiError):  # already there: update its status below
        api.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
    res = {**NODE_RESOURCES, **resources}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    now = now_iso()
    api.patch_status(f"/api/v1/nodes/{quote(name)}", {
        "capacity": res, "allocatable": res,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "queueworker test kubelet", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}],
    })


@dataclass
class Container:
    """What the kubelet knows of one pod it runs (keyed by the pod's UID)."""

    pod: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart_at: float | None = None
    deadline: float | None = None  # set once the pod is terminating
    done: bool = False  # a terminal phase was reported

    @property
    def path(self) -> str:
        meta = self.pod["metadata"]
        return f"/api/v1/namespaces/{quote(meta['namespace'])}/pods/{quote(meta['name'])}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


class Kubelet:
    """Runs the pods of its Nodes; `start()` it, `close()` it after the tests."""

    def __init__(self, api: KubeApi, workdir: Path, nodes: Iterable[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.api = api
        self.workdir = workdir
        self.nodes = set(nodes)
        self.env = {"PYTHONPATH": str(TESTS), **(env or {})}
        self.pods: dict[str, Container] = {}
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add_node(self, name: str, gpus: int = 0, **resources: str) -> None:
        self.nodes.add(name)
        add_node(self.api, name, gpus, **resources)

    def start(self) -> Kubelet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for target in (self._watch_loop, self._run_loop):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self, grace: float = 5) -> None:
        """Stop watching and end every process (SIGTERM, then SIGKILL after `grace`)."""
        self._stop.set()
        # Only the run loop is joined: the watch thread may sit in a read for up
        # to the watch timeout; it is a daemon and stops at its next event.
        for thread in self._threads[1:]:
            thread.join(timeout=5)
        for c in self.pods.values():
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in self.pods.values():
            while c.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            c.signal(signal.SIGKILL)
            if c.proc is not None:
                c.proc.wait()

    def _note(self, message: str) -> None:
        log.warning("kubelet: %s", message)
        self.errors = [*self.errors[-49:], message]

    # -- the watch: one list, then watch from its resourceVersion; relist on error

    def _watch_loop(self) -> None:
        selector = "spec.nodeName!="
        while not self._stop.is_set():
            try:
                listing = self.api.get(f"/api/v1/pods?fieldSelector={quote(selector)}")
                rv: str = listing["metadata"]["resourceVersion"]
                for pod in listing["items"]:
                    self.events.put(("SYNC", pod))
                self.events.put(("LISTED", {"uids": [p["metadata"]["uid"]
                                                     for p in listing["items"]]}))
                while not self._stop.is_set():
                    for event in self.api.watch("/api/v1/pods", rv, fieldSelector=selector):
                        obj = event["object"]
                        if event["type"] == "ERROR":  # 410 Gone: relist
                            raise ApiError(int(obj.get("code", 0)), str(obj.get("message")))
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.events.put((event["type"], obj))
            except (ApiError, OSError, ValueError, KeyError) as err:
                if not self._stop.is_set():
                    self._note(f"watch: {err}; listing again")
                    time.sleep(0.5)

    # -- the loop: events in, processes and statuses out

    def _run_loop(self) -> None:
        while not self._stop.is_set():
            try:
                kind, obj = self.events.get(timeout=0.1)
            except queue.Empty:
                kind, obj = "", {}
            try:
                if kind:
                    self._on_event(kind, obj)
                self._tick()
            except ApiError as err:
                self._note(str(err))

    def _on_event(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "LISTED":
            for uid in set(self.pods) - set(pod["uids"]):
                self._forget(uid)
            return
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            self._forget(uid)
            return
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        c = self.pods.get(uid)
        if c is None:
            if pod["metadata"].get("deletionTimestamp"):
                self._remove(Container(pod))  # never started: nothing to stop
                return
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            c = self.pods[uid] = Container(pod)
            self._launch(c)
        c.pod = pod
        if pod["metadata"].get("deletionTimestamp") and c.deadline is None:
            meta, spec = pod["metadata"], pod["spec"]
            grace = meta.get("deletionGracePeriodSeconds",
                             spec.get("terminationGracePeriodSeconds", 30))
            c.deadline = time.monotonic() + float(grace or 0)
            c.signal(signal.SIGTERM)

    def _tick(self) -> None:
        for c in list(self.pods.values()):
            if c.deadline is not None:
                if c.running() and time.monotonic() < c.deadline:
                    continue
                c.signal(signal.SIGKILL)
                if c.proc is not None:
                    c.proc.wait()
                self._remove(c)
            elif c.restart_at is not None and time.monotonic() >= c.restart_at:
                c.restart_at = None
                self._launch(c)
            elif c.proc is not None and not c.done and c.restart_at is None \
                    and c.proc.poll() is not None:
                self._exited(c, c.proc.returncode)

    def _forget(self, uid: str) -> None:
        """The pod is gone from the API (force-deleted): its process goes too."""
        c = self.pods.pop(uid, None)
        if c is not None:
            c.signal(signal.SIGKILL)
            if c.proc is not None:
                c.proc.wait()

    def _remove(self, c: Container) -> None:
        self.pods.pop(c.pod["metadata"]["uid"], None)
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": c.pod["metadata"]["uid"]}}
        try:
            self.api.request("DELETE", c.path, options)
        except ApiError as err:
            if err.status not in (404, 409):  # gone already, or a new pod of that name
                raise

    # -- processes

    def command(self, pod: dict[str, Any]) -> list[str] | None:
        """The process for a pod's first container, or None to emulate it."""
        container = pod["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            return None
        if argv[0] == "queueworker":
            return [sys.executable, "-m", "queueworker.cli", *argv[1:]]
        exe = shutil.which(argv[0])
        return None if exe is None else [exe, *argv[1:]]

    def _launch(self, c: Container) -> None:
        argv = self.command(c.pod)
        c.proc = None
        if argv is not None:
            env = {**os.environ, **self.env, **self._container_env(c.pod)}
            # The pod's own host name, as a runtime's UTS namespace gives it (spec.hostname,
            # else the pod name): other libraries' workers report it to the busy adapters.
            host = c.pod["spec"].get("hostname") or c.pod["metadata"]["name"][:63]
            env["HOSTNAME"] = env["QUEUEWORKER_POD_HOSTNAME"] = host
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(PODHOST), env.get("PYTHONPATH"))))
            out = self.workdir / f"{c.pod['metadata']['namespace']}.{c.pod['metadata']['name']}.log"
            with out.open("ab") as fh:
                try:
                    c.proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, cwd=self.workdir,
                                              start_new_session=True)
                except OSError as err:
                    self._note(f"{c.path}: cannot start {argv[0]}: {err}")
                    self._report(c, ready=False, state={"waiting": {
                        "reason": "StartError", "message": str(err)}})
                    return
        self._report(c, ready=True, state={"running": {"startedAt": now_iso()}},
                     phase="Running")

    def _exited(self, c: Container, code: int) -> None:
        policy = c.pod["spec"].get("restartPolicy", "Always")
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "finishedAt": now_iso()}
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            c.restarts += 1
            c.restart_at = time.monotonic() + min(10.0, 0.5 * 2 ** min(c.restarts, 5))
            self._report(c, ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}},
                         last={"terminated": terminated})
            return
        c.done = True
        self._report(c, ready=False, state={"terminated": terminated},
                     phase="Succeeded" if code == 0 else "Failed")

    def _report(self, c: Container, ready: bool, state: dict[str, Any],
                phase: str | None = None, last: dict[str, Any] | None = None) -> None:
        now = now_iso()
        flag = "True" if ready else "False"
        status: dict[str, Any] = {
            "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True",
                 "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now}],
            "containerStatuses": [
                {"name": k["name"], "image": k.get("image", ""), "imageID": "",
                 "ready": ready, "started": ready, "restartCount": c.restarts, "state": state,
                 **({"lastState": last} if last else {})}
                for k in c.pod["spec"]["containers"]],
        }
        if phase:
            status["phase"] = phase
        if not c.pod.get("status", {}).get("startTime"):
            status["startTime"] = now
        c.pod = self.api.patch_status(c.path, status)

    # -- env

    def _container_env(self, pod: dict[str, Any]) -> dict[str, str]:
        container = pod["spec"]["containers"][0]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:  # `env` below wins, as in Kubernetes
            env.update(self._env_from(pod, source))
        for item in container.get("env") or []:
            value = self._env_value(pod, item)
            if value is not None:
                env[item["name"]] = value
        return env

    def _env_from(self, pod: dict[str, Any], source: dict[str, Any]) -> dict[str, str]:
        ns = quote(pod["metadata"]["namespace"])
        for key, kind in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            if key in source:
                try:
                    obj = self.api.get(f"/api/v1/namespaces/{ns}/{kind}/"
                                       f"{quote(source[key]['name'])}")
                except ApiError as err:
                    self._note(f"envFrom {source[key]['name']}: {err}")
                    return {}
                data = obj.get("data") or {}
                decode = kind == "secrets"
                return {source.get("prefix", "") + k: base64.b64decode(v).decode() if decode
                        else str(v) for k, v in data.items()}
        return {}

    def _env_value(self, pod: dict[str, Any], item: dict[str, Any]) -> str | None:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom") or {}
        ns = quote(pod["metadata"]["namespace"])
        if "fieldRef" in source:
            return field_ref(pod, source["fieldRef"]["fieldPath"])
        for key, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                try:
                    obj = self.api.get(f"/api/v1/namespaces/{ns}/{kind}/{quote(ref['name'])}")
                except ApiError as err:
                    self._note(f"env {item['name']}: {err}")
                    return None
                raw = (obj.get("data") or {}).get(ref["key"])
                if raw is None:
                    return None
                return base64.b64decode(raw).decode() if kind == "secrets" else str(raw)
        return None


def field_ref(pod: dict[str, Any], path: str) -> str | None:
    """The downward API's fieldRef values the kubelet resolves."""
    meta, spec = pod["metadata"], pod["spec"]
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return None if simple[path] is None else str(simple[path])
    for prefix, mapping in (("metadata.labels", "labels"),
                            ("metadata.annotations", "annotations")):
        if path.startswith(f"{prefix}['") and path.endswith("']"):
            value = (meta.get(mapping) or {}).get(path[len(prefix) + 2:-2])
            return None if value is None else str(value)
    return None
