"""kopf registrations of the QueueWorker operator. Thin: the work is in controller/.

- One daemon per QueueWorker runs its loop (controller/loop.py: spec ->
  connect -> reconcile -> observe -> decide -> act -> report). kopf starts it on
  create and on operator start (resume), stops it on delete, and pauses it
  while a higher-priority peer is active.
- A low-level event handler only wakes the loop so a spec change or a
  ``kubectl scale`` acts at once instead of at the next poll.
- Indexes keep Pods, Nodes and our Deployments in memory (no LIST per poll).
- The login handler gives kopf and the operator's own client the same
  credentials.

No module globals: what the handlers share travels in kopf's ``memo``. The
CLI and the test harness build it with ``operator_memo`` and pass it to
``kopf.operator(memo=...)``; it holds one ``context.Runtime`` (config,
credentials, the ``Shared`` caches from startup to cleanup). kopf hands every
QueueWorker a shallow copy of that memo: the Runtime in it is the same object,
and the copy itself is where the daemon leaves its loop for the wake handler
of the same QueueWorker.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import kopf

from queueworker.operator import api, metrics, shard
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import index as kube_index
from queueworker.operator.controller.context import Indexes, OperatorConfig, Runtime, Shared
from queueworker.operator.controller.loop import QueueWorkerLoop

logger = logging.getLogger(__name__)

_RUNTIME = "runtime"  # the memo key of the Runtime
_LOOP = "loop"  # the per-QueueWorker memo key of its running loop


def operator_memo(config: OperatorConfig | None = None,
                  connection: kopf.ConnectionInfo | None = None) -> kopf.Memo:
    """The memo to start kopf with: the CLI's (or a test's) config and, for a test,
    the credentials the login handler is to use."""
    return kopf.Memo({_RUNTIME: Runtime(config or OperatorConfig(), connection)})


def runtime(memo: Any) -> Runtime:
    """The Runtime in ``memo``; a bare ``kopf run`` (no memo given) gets the defaults."""
    found = memo.get(_RUNTIME) if isinstance(memo, dict) else None
    if isinstance(found, Runtime):
        return found
    if isinstance(memo, dict):
        made = Runtime()
        memo[_RUNTIME] = made
        return made
    raise kopf.PermanentError("the operator's memo is not a kopf.Memo")


def shared(memo: Any) -> Shared:
    found = runtime(memo).shared
    if found is None:
        raise kopf.TemporaryError("operator is starting", delay=1)
    return found


@kopf.on.login(errors=kopf.ErrorsMode.PERMANENT)
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    rt = runtime(memo)
    info = rt.connection
    if info is None:
        info = (kopf.login_with_service_account(**kwargs)
                or kopf.login_with_kubeconfig(**kwargs))
    if info is not None:
        rt.connection = info
    return info


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf turns handler log lines into Events at INFO by default; the loop posts
    # its own Events for every scale decision, so only warnings go as Events.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = 4
    settings.persistence.finalizer = "queueworker.dev/finalizer"
    rt = runtime(memo)
    if rt.config.shard_selector:
        # Server side: the API server sends this shard its own QueueWorkers only
        # (shard.py, docs/sharding.md), not every one for a filter here to drop.
        settings.watching.label_selectors[api.GROUP, api.PLURAL] = rt.config.shard_selector
    if rt.config.shard:
        # Only the Deployments and pods this shard built: the builder stamps its name
        # on them (deployment.object_labels); a QueueWorker moved here gets the label
        # at its first reconcile (the plan's create meets the existing Deployment).
        own = f"{dep.LABEL_SHARD}={rt.config.shard}"
        settings.watching.label_selectors["apps", "deployments"] = (
            f"{dep.LABEL_MANAGED_BY}={dep.MANAGED_BY},{own}")
        if not rt.config.shard_all_pods:  # GPU shards count every pod on a node
            settings.watching.label_selectors["v1", "pods"] = own
    rt.shared = Shared(rt.config, lambda: _client(rt))


def _client(rt: Runtime) -> kube.KubeClient:
    if rt.connection is None:  # the login handler runs before any daemon or handler
        raise kopf.TemporaryError("not logged in yet", delay=1)
    return kube.KubeClient(rt.connection, on_error=metrics.count_api_error,
                           on_request=metrics.count_api_request)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    if rt.shared is not None:
        await rt.shared.close()
        rt.shared = None


@kopf.on.probe(id="queueworkers")
def probe(memo: kopf.Memo, **_: Any) -> int:
    """Liveness: the operator answers; the value is how many loops run here."""
    return len(runtime(memo).running)


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


@functools.lru_cache(maxsize=4)
def _requirements(selector: str) -> tuple[shard.Requirement, ...]:
    return shard.parse(selector)


def in_shard(labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> bool:
    """Whether this operator's shard selects the QueueWorker (always, unsharded).

    The watch's selector alone does not stop a daemon: a QueueWorker relabelled out
    of the shard leaves the watch as a DELETED event without a deletion timestamp,
    and kopf stops daemons on a deletion or a filter that no longer matches, not on
    that event. This filter is what stops the loop here, so the new shard's is the
    only one left (docs/sharding.md, "Moving a QueueWorker between shards")."""
    selector = runtime(memo).config.shard_selector
    return selector is None or shard.matches(_requirements(selector), labels)


@kopf.daemon(api.GROUP, api.VERSION, api.PLURAL, id="autoscale", when=in_shard,
             cancellation_backoff=0.5, cancellation_timeout=10.0)
async def autoscale(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
                    **kwargs: Any) -> None:
    indexes = Indexes(kwargs["qw_pods"], kwargs["qw_nodes"], kwargs["qw_deployments"])
    loop = QueueWorkerLoop(shared(memo), body, indexes)
    key = (loop.namespace, loop.name)
    running = runtime(memo).running
    memo[_LOOP] = loop
    running.add(key)
    try:
        await loop.run(stopped)
    finally:
        if memo.get(_LOOP) is loop:
            del memo[_LOOP]
            running.discard(key)
        metrics.forget(loop.namespace, loop.name)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def wake(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Wake the loop at once when the spec (or the pause annotation) changed.

    A low-level event handler, not on.create/on.update: those make kopf keep a
    diff base and progress annotations on every QueueWorker and diff every
    watch event, including the loop's own status writes; this costs a lookup.
    """
    loop = memo.get(_LOOP)
    if isinstance(loop, QueueWorkerLoop) and loop.spec_changed(meta):
        loop.kick()
