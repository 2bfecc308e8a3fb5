"""Every pod of one namespace as this machine saw it through a watch (e2e_operator,
e2e_foreign): when each turned Ready and when it was told to stop (deletionTimestamp),
on this machine's clock, the one the jobs log their start and end with."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cluster.controlplane import ControlPlane
from cluster.kubeapi import ApiError


@dataclass
class PodSeen:
    template_hash: str
    ready_at: float | None = None
    deleted_at: float | None = None


@dataclass
class PodWatcher:
    """Every pod of `namespace` as this machine saw it through a watch."""

    plane: ControlPlane
    namespace: str
    pods: dict[str, PodSeen] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> PodWatcher:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        api = self.plane.api()
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        while not self.stopped.is_set():
            try:
                listed = api.get(path)
                for pod in listed.get("items", []):
                    self._note(pod)
                rv = listed["metadata"]["resourceVersion"]
                for event in api.watch(path, rv, timeout_seconds=10):
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._note(event["object"])
                    if self.stopped.is_set():
                        return
            except ApiError:
                time.sleep(0.2)

    def _note(self, pod: dict[str, Any]) -> None:
        now = time.time()
        meta = pod["metadata"]
        seen = self.pods.setdefault(meta["name"], PodSeen(
            (meta.get("labels") or {}).get("pod-template-hash", "")))
        conditions = (pod.get("status") or {}).get("conditions") or []
        if seen.ready_at is None and any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in conditions):
            seen.ready_at = now
        if seen.deleted_at is None and meta.get("deletionTimestamp"):
            seen.deleted_at = now
