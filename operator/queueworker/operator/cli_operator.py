"""`queueworker operator`: run the Kubernetes operator (kopf with our settings).

High availability: run several replicas with peering (the default uses the
KopfPeering/ClusterKopfPeering named by --peering, "queueworker" by default).
Each replica gets a distinct priority; the highest one acts, the others keep
their watches and caches warm and take over when it goes away: at once on a
clean exit, within --peering-lifetime (60 s by default) when it is killed or
cut off. --standalone turns peering off (one replica only, e.g. with a
Recreate strategy).

Privileged templates are refused by default (--refuse-privileged, see
podsecurity.py): the operator creates pods for whoever may write QueueWorkers.
--no-refuse-privileged opts out, as the chart's operator.refusePrivileged=false.

Sharding (docs/sharding.md): --shard NAME (or $QUEUEWORKER_SHARD) serves only the
QueueWorkers labelled queueworker.dev/shard=NAME, selected by the API server,
and elects its active replica in its own peering object
(queueworker-operator-NAME unless --peering says otherwise); --shard-selector
(or $QUEUEWORKER_SHARD_SELECTOR) picks them by any other label selector, e.g.
'!queueworker.dev/shard' for the QueueWorkers no shard label names. A shard
watches only the Deployments and pods labelled queueworker.dev/shard=NAME (it
stamps them so); --shard-all-pods keeps every pod in view for GPU QueueWorkers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import random
import sys

from queueworker.common.log import log_event
from queueworker.operator import shard as sharding

DEFAULT_PEERING = "queueworker-operator"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker operator",
                                description="Run the QueueWorker Kubernetes operator.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeat for several; globs allowed)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="watch every namespace (the default when no --namespace)")
    p.add_argument("--metrics-port", type=int, default=8080, metavar="P",
                   help="Prometheus metrics on this port (0: off; default 8080)")
    peer = p.add_mutually_exclusive_group()
    peer.add_argument("--peering", metavar="NAME", default=None,
                      help=f"peering object for HA (default {DEFAULT_PEERING!r})")
    peer.add_argument("--standalone", action="store_true", help="no peering (one replica)")
    p.add_argument("--priority", type=int, default=None,
                   help="peering priority (default: random, distinct per replica)")
    p.add_argument("--peering-lifetime", type=int, default=60, metavar="S",
                   help="a replica not heard from for this long is presumed dead and a "
                   "standby takes over (default 60; keep-alives every S-10..S-5 s)")
    p.add_argument("--liveness", metavar="URL", default=None,
                   help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument("--shard", metavar="NAME", default=os.environ.get(sharding.ENV_SHARD),
                   help="serve only the QueueWorkers labelled queueworker.dev/shard=NAME, "
                   "with the peering object queueworker-operator-NAME "
                   "(default $QUEUEWORKER_SHARD; none: every QueueWorker)")
    p.add_argument("--shard-selector", metavar="SELECTOR",
                   default=os.environ.get(sharding.ENV_SHARD_SELECTOR),
                   help="the shard's QueueWorkers by this label selector instead, e.g. "
                   "'!queueworker.dev/shard' (default $QUEUEWORKER_SHARD_SELECTOR)")
    p.add_argument("--shard-all-pods", action="store_true",
                   default=os.environ.get(sharding.ENV_SHARD_ALL_PODS, "") in ("1", "true"),
                   help="a shard with GPU QueueWorkers: watch every pod, not only the "
                   "shard's own (free GPUs count every pod on a node; default "
                   "$QUEUEWORKER_SHARD_ALL_PODS)")
    p.add_argument("--status-refresh", type=float, default=10.0, metavar="S",
                   help="refresh backlog numbers in status at most this often (default 10)")
    p.add_argument("--refuse-privileged", action=argparse.BooleanOptionalAction, default=True,
                   help="refuse QueueWorkers whose pod template asks for privileged "
                   "containers, host namespaces or hostPath volumes (SpecValid=False); "
                   "on by default, --no-refuse-privileged opts out")
    p.add_argument("--log-format", choices=("json", "plain"), default="json")
    p.add_argument("--log-level", choices=("debug", "info", "warning"), default="info")
    p.add_argument("--verbose", "-v", action="store_true", help="same as --log-level=debug")
    return p


# The cyclic GC, tuned for thousands of QueueWorker loops in one process: each poll
# leaves objects that live until the next one (the engine's memory, the reading),
# so they outlive the young generations and pile into the old one, and Python's
# defaults (700, 10, 10) then scan the whole heap (half a second at 3,000 loops)
# every few seconds: a third of the CPU, and pauses that make polls late
# (benchmarks/operator_scale/RESULTS.md). Rarer young collections let a poll's
# garbage die first; the old generation is scanned ten times less often.
GC_THRESHOLDS = (10_000, 10, 100)


def tune_gc() -> None:
    """The thresholds above, and everything imported so far (modules, kopf, the API
    models) frozen out of every later collection: it lives as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not 0 <= args.metrics_port <= 65535:
        print("queueworker operator: --metrics-port must be 0..65535", file=sys.stderr)
        return 2
    if args.status_refresh <= 0:
        print("queueworker operator: --status-refresh must be > 0", file=sys.stderr)
        return 2
    if args.peering_lifetime < 5:
        print("queueworker operator: --peering-lifetime must be >= 5", file=sys.stderr)
        return 2

    try:
        shard = sharding.shard(args.shard, args.shard_selector)
    except sharding.ShardError as exc:
        print(f"queueworker operator: {exc}", file=sys.stderr)
        return 2

    import kopf

    from queueworker.operator import handlers, metrics
    from queueworker.operator.controller.context import OperatorConfig

    kopf.configure(verbose=args.verbose or args.log_level == "debug",
                   quiet=args.log_level == "warning",
                   log_format=kopf.LogFormat.JSON if args.log_format == "json"
                   else kopf.LogFormat.PLAIN)
    # What the handlers share travels in kopf's memo (handlers.operator_memo), set up
    # here the same way the test harness does it; the priority goes to kopf itself.
    memo = handlers.operator_memo(OperatorConfig(
        status_refresh_seconds=args.status_refresh, refuse_privileged=args.refuse_privileged,
        shard_selector=shard.selector if shard else None, shard=shard.name if shard else None,
        shard_all_pods=args.shard_all_pods))
    priority = args.priority if args.priority is not None else random.randint(1, 2**30)
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port)
        except OSError as exc:
            print(f"queueworker operator: metrics port {args.metrics_port}: {exc.strerror}",
                  file=sys.stderr)
            return 1
    namespaces = list(args.namespace)
    standalone = bool(args.standalone)
    own_peering = shard.peering if shard else DEFAULT_PEERING
    peering = None if standalone else (args.peering or own_peering)
    log_event(logging.getLogger(__name__), "operator.starting",
              namespaces=",".join(namespaces) or "*", peering=peering, priority=priority,
              shard=shard.name if shard else None,
              shard_selector=shard.selector if shard else None, pid=os.getpid())
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = args.peering_lifetime
    tune_gc()
    try:
        asyncio.run(kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=standalone,
            peering_name=peering,
            priority=priority,
            liveness_endpoint=args.liveness,
            memo=memo,
            settings=settings,
        ))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # e.g. no credentials: one line, not a traceback wall
        print(f"queueworker operator: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
