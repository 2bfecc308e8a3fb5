"""kopf registrations of the QueueWorker operator. Thin: the work is in poller.py.

- One daemon per QueueWorker runs its loop (reconcile, observe, decide, act,
  report). kopf starts it on create and on operator start (resume), stops it
  on delete, and pauses it while a higher-priority peer is active.
- A low-level event handler only wakes the loop so a spec change or a
  ``kubectl scale`` acts at once instead of at the next poll.
- Indexes keep Pods, Nodes and our Deployments in memory (no LIST per poll).
- The login handler gives kopf and the operator's own client the same
  credentials.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from queueworker.operator import api, metrics
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller import loop as poller

logger = logging.getLogger(__name__)

# Set by the CLI (or a test) before the operator starts.
CONFIG = poller.OperatorConfig()
SETTINGS: dict[str, Any] = {}  # peering/timeouts overrides the CLI passes through
_shared: poller.Shared | None = None


def shared() -> poller.Shared:
    if _shared is None:
        raise kopf.TemporaryError("operator is starting", delay=1)
    return _shared


@kopf.on.login(errors=kopf.ErrorsMode.PERMANENT)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kube.configured()
    if info is None:
        info = (kopf.login_with_service_account(**kwargs)
                or kopf.login_with_kubeconfig(**kwargs))
    if info is not None:
        kube.configure(info)
    return info


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _shared
    # kopf turns handler log lines into Events at INFO by default; the loop posts
    # its own Events for every scale decision, so only warnings go as Events.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = 4
    settings.persistence.finalizer = "queueworker.dev/finalizer"
    if "peering_priority" in SETTINGS:
        settings.peering.priority = int(SETTINGS["peering_priority"])
    _shared = poller.Shared(CONFIG, _client)


def _client() -> kube.KubeClient:
    info = kube.configured()
    if info is None:  # the login handler runs before any daemon or handler
        raise kopf.TemporaryError("not logged in yet", delay=1)
    return kube.KubeClient(info, on_error=metrics.count_api_error,
                           on_request=metrics.count_api_request)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    global _shared
    if _shared is not None:
        await _shared.close()
        _shared = None


@kopf.on.probe(id="queueworkers")
def probe(**_: Any) -> int:
    """Liveness: the operator answers; the value is how many loops run here."""
    return len(_shared.loops) if _shared is not None else 0


# ---------------------------------------------------------------------------- indexes
# Async on purpose: kopf runs a plain `def` handler in a thread pool, a hop per
# watch event that these few dict lookups do not need.


@kopf.index("pods")
async def qw_pods(namespace: str | None, name: str, meta: kopf.Meta, spec: kopf.Spec,
                  status: kopf.Status, **_: Any) -> dict[Any, Any]:
    return kube_index.index_pod(namespace or "", name, meta, spec, status)


@kopf.index("nodes")
async def qw_nodes(name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status,
                   **_: Any) -> dict[Any, Any]:
    return {name: kube_index.trim_node(name, meta, spec, status)}


@kopf.index("deployments", labels={dep.LABEL_MANAGED_BY: dep.MANAGED_BY})
async def qw_deployments(namespace: str | None, meta: kopf.Meta, spec: kopf.Spec,
                         status: kopf.Status, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
    instance = labels.get(dep.LABEL_INSTANCE)
    if not instance:
        return {}
    return {(namespace, instance): kube_index.deployment_entry(meta, spec, status)}


# ------------------------------------------------------------------------ QueueWorkers


@kopf.daemon(api.GROUP, api.VERSION, api.PLURAL, id="autoscale",
             cancellation_backoff=0.5, cancellation_timeout=10.0)
async def autoscale(body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
    indexes = poller.Indexes(kwargs["qw_pods"], kwargs["qw_nodes"], kwargs["qw_deployments"])
    loop = poller.QueueWorkerLoop(shared(), body, indexes)
    try:
        await loop.run(stopped)
    finally:
        metrics.forget(loop.namespace, loop.name)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def wake(namespace: str | None, name: str, meta: kopf.Meta, **_: Any) -> None:
    """Wake the loop at once when the spec (or the pause annotation) changed.

    A low-level event handler, not on.create/on.update: those make kopf keep a
    diff base and progress annotations on every QueueWorker and diff every
    watch event, including the loop's own status writes; this costs a lookup.
    """
    loop = _shared.loops.get((namespace or "", name)) if _shared is not None else None
    if loop is not None and loop.spec_changed(meta):
        loop.kick.set()
