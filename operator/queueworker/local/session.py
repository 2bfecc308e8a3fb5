"""`queueworker local -f FILE`: the autoscaler on this machine, with worker processes.

Reads a QueueWorker manifest and runs the operator's decision engine against
its Redis; each replica is a local process running the template's first
container's command (`queueworker worker ...` runs with this interpreter).
Ctrl-C (or SIGTERM) drains like a pod's SIGTERM: scaling stops, every worker
gets SIGTERM, finishes or hands its jobs back, and local mode exits 0.

Only native workers (`queueworker worker`) write heartbeats; with any other
command local mode cannot tell busy from idle and stops the newest first.
There are no nodes here, so GPU capacity is not observed (spec.gpu is ignored),
and Secrets cannot be read: a spec with urlSecretRef needs --redis-url.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import redis
import yaml

from queueworker.common.errors import QueueworkerError
from queueworker.common.log import LogfmtFormatter, log_event
from queueworker.common.redact import redact
from queueworker.local import preflight
from queueworker.local.embedded_redis import EmbeddedRedis, EmbeddedRedisError, reachable
from queueworker.local.metrics import LocalMetrics
from queueworker.local.pool import ProcessPool, template_env, worker_command
from queueworker.local.runner import LocalRunner
from queueworker.local.view import LiveView, PlainView, View
from queueworker.observe import busy, depths
from queueworker.observe.busy import celery
from queueworker.observe.connections import (
    RedisConfigError,
    RedisTarget,
    target_from_spec,
    url_with_credentials,
)
from queueworker.observe.layouts.native import worker_prefix
from queueworker.operator import api, kubectl_yaml, validation_warnings
from queueworker.operator.validation import SpecError, parse_manifest
from queueworker.worker.config import ENV_DRAIN_DEADLINE, ENV_PREFIX, ENV_QUEUES, ENV_REDIS_URL

log = logging.getLogger("queueworker.local")


class LocalError(QueueworkerError, RuntimeError):
    """A problem a person can act on (printed without a traceback)."""


def load_manifest(path: str) -> tuple[str, api.QueueWorkerSpec]:
    """The first QueueWorker in a YAML file: (metadata.name, spec)."""
    try:
        with open(path, encoding="utf-8") as fh:
            docs = kubectl_yaml.load_all(fh.read())  # read as `kubectl apply` would send it
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LocalError(f"{path}: cannot read: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == api.KIND:
            try:
                spec = parse_manifest(doc)
            except SpecError as exc:
                lines = "\n".join(f"  {p}" for p in exc.problems)
                raise LocalError(f"{path}: invalid QueueWorker:\n{lines}") from None
            return str(doc["metadata"]["name"]), spec
    raise LocalError(f"{path}: no {api.KIND} in this file")


@dataclass
class Setup:
    name: str
    spec: api.QueueWorkerSpec
    redis_url: str | None = None  # overrides spec.redis
    embedded_redis: bool = False
    data_dir: Path | None = None
    metrics_port: int | None = None
    wait_redis_seconds: float = 0.0  # how long to wait for an unreachable spec Redis
    worker_log: IO[bytes] | None = None  # None: workers write to this process's stderr


@contextlib.contextmanager
def session(setup: Setup, view: View) -> Iterator[LocalRunner]:
    """Redis (the spec's, or an embedded one), the pool and the runner; always cleaned up.

    On exit the workers are drained first and the embedded Redis stopped last,
    so handed-back jobs reach it.
    """
    spec = setup.spec
    embedded: EmbeddedRedis | None = None
    try:
        if setup.redis_url is not None:
            spec = spec.model_copy(update={"redis": api.RedisSpec(url=setup.redis_url)})
        target = target_from_spec(spec.redis)
    except (RedisConfigError, ValueError) as exc:
        raise LocalError(f"{exc} (local mode: pass --redis-url)") from None
    if not reachable(url_with_credentials(target)) and not setup.embedded_redis:
        _wait_for_redis(url_with_credentials(target), target.display,
                        setup.wait_redis_seconds, view)
    if not reachable(url_with_credentials(target)):
        if not setup.embedded_redis:
            raise LocalError(f"Redis at {target.display} cannot be reached; start it, pass "
                             "--redis-url, or --embedded-redis to run a local redis-server")
        try:
            embedded = EmbeddedRedis(data_dir=setup.data_dir).start()
        except EmbeddedRedisError as exc:
            raise LocalError(str(exc)) from None
        view.note(f"Redis at {target.display} unreachable: started an embedded redis-server "
                  f"at {embedded.url} (AOF in {embedded.data_dir})")
        spec = spec.model_copy(update={"redis": api.RedisSpec(url=embedded.url)})
        target = target_from_spec(spec.redis)
    try:
        with _pool_and_runner(setup, spec, target, view) as runner:
            yield runner
    finally:
        if embedded is not None:
            _warn_discarded(embedded, spec, target, view)
            embedded.stop()


def _wait_for_redis(url: str, display: str, seconds: float, view: View) -> None:
    """Give a Redis that is still starting (after a reboot, under a supervisor) time to answer.

    Why: local mode restarted together with its Redis (systemd, a crash) would
    otherwise exit at once, and a supervisor's restart loop decides the outcome.
    """
    if seconds <= 0:
        return
    view.note(f"waiting up to {seconds:g}s for Redis at {display}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reachable(url):
            return
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _warn_discarded(embedded: EmbeddedRedis, spec: api.QueueWorkerSpec, target: RedisTarget,
                    view: View) -> None:
    """Say how many jobs a temporary embedded Redis still holds before it is deleted.

    Its data folder is a temp dir removed on stop; jobs left there (waiting,
    delayed, or handed back by the drain) would vanish without a word.
    With --data-dir the folder stays, and so do they.
    """
    if not embedded.owns_data_dir:
        return
    client = target.sync_client(socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        queues = depths.read_sync(client, spec.queues, time.time())
    except (depths.QueueReadError, redis.RedisError, OSError):
        return  # nothing to count: no warning rather than a wrong one
    finally:
        client.close()
    waiting = sum(q.waiting for q in queues)
    delayed = sum(q.delayed for q in queues)
    held = sum(q.in_flight for q in queues)
    total = waiting + delayed + held
    if total == 0:
        return
    log_event(log, "embedded_redis.discarded", logging.WARNING, jobs=total, waiting=waiting,
              delayed=delayed, in_flight=held)
    view.note(f"warning: discarding the temporary embedded Redis with {total} jobs in it "
              f"(waiting {waiting}, delayed {delayed}, in flight {held}); pass --data-dir "
              "to keep them for the next run")


@contextlib.contextmanager
def _pool_and_runner(setup: Setup, spec: api.QueueWorkerSpec, target: RedisTarget,
                     view: View) -> Iterator[LocalRunner]:
    ours = {
        ENV_REDIS_URL: url_with_credentials(target),
        ENV_QUEUES: ",".join(q.name for q in spec.queues),
        ENV_DRAIN_DEADLINE: str(spec.drain.worker_deadline_seconds),
    }
    prefix = worker_prefix(spec)
    if prefix is not None:  # as the Deployment builder does: the readers look there
        ours[ENV_PREFIX] = prefix
    env = {**template_env(spec), **ours}
    argv = worker_command(spec)
    problem = preflight.check(argv, env)
    if problem is not None:
        raise LocalError(problem)
    _note_busy_source(spec, view)
    for warning in validation_warnings.warnings(spec):
        view.note(f"warning: {warning}")
    celery_apps = celery.prefixes(spec.queues)
    pool = ProcessPool(setup.name, argv, env,
                       grace_seconds=spec.drain.grace_seconds, log_file=setup.worker_log,
                       named=celery.NODE_NAME if celery_apps else None)
    client = target.sync_client(socket_timeout=2.0, socket_connect_timeout=2.0)
    metrics = LocalMetrics(setup.name)
    runner = LocalRunner(setup.name, spec, client, pool, view, metrics, redact(target.display))
    stop_listening = threading.Event()
    if celery_apps:
        runner.celery = celery.CeleryHeartbeats()
        runner.celery_prefixes = celery_apps
        threading.Thread(target=celery.listen_sync, args=(client, runner.celery, stop_listening),
                         name="celery-heartbeats", daemon=True).start()
    try:
        if setup.metrics_port is not None:
            metrics.serve(setup.metrics_port)
            view.note(f"metrics: http://127.0.0.1:{setup.metrics_port}/metrics")
        yield runner
    finally:
        runner.drain()
        stop_listening.set()
        client.close()


def _note_busy_source(spec: api.QueueWorkerSpec, view: View) -> None:
    """Say once how local mode knows which replicas are busy (docs/workers/)."""
    layouts = sorted({q.layout.value for q in spec.queues if q.layout != api.QueueLayout.native})
    if not layouts:
        return
    blind = sorted({q.layout.value for q in spec.queues
                    if q.layout != api.QueueLayout.native
                    and q.layout not in busy.ADAPTERS and q.layout not in busy.LISTENED})
    partial = sorted(v for v in blind if api.QueueLayout(v) in busy.clients.LAYOUTS)
    if partial:  # Laravel: idle only while blocked waiting, named after its replica
        view.note(f"busy replicas: {', '.join(partial)} workers count idle while blocked "
                  "waiting for work (CLIENT LIST, connection named after POD_NAME); "
                  "otherwise unknown")
        blind = [v for v in blind if v not in partial]
    opt_in = sorted({q.layout.value for q in spec.queues if q.layout in busy.OPT_IN})
    if opt_in:  # Dramatiq, arq: only workers named after their replica (HOSTNAME) report
        view.note(f"busy replicas: unknown for layout {', '.join(opt_in)} unless its workers "
                  "are named after their replica (HOSTNAME; opt-in, docs/workers/); "
                  "unknown replicas are stopped after idle ones")
    if blind:
        view.note(f"busy replicas: unknown for layout {', '.join(blind)} (no busy adapter): "
                  "replicas are stopped newest first; the in-flight count keeps enough of them")
    elif not partial and not opt_in:
        view.note(f"busy replicas: read from the {', '.join(layouts)} workers' own reports "
                  "(idle replicas are stopped first)")


class Signals:
    """SIGINT/SIGTERM while local mode runs: the first drains, a second one kills.

    Installed before the session starts and removed after it has drained and
    stopped the embedded Redis, so an impatient second Ctrl-C never leaves a
    redis-server or workers behind.
    """

    def __init__(self) -> None:
        self.runner: LocalRunner | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        runner = self.runner
        if runner is None:
            raise KeyboardInterrupt  # before the loop exists: nothing to drain
        if runner.stop_event.is_set():
            log_event(log, "signal.force_stop", logging.WARNING, signal=signal.Signals(signum).name)
            runner.force_event.set()
        else:
            log_event(log, "signal.drain", signal=signal.Signals(signum).name)
            runner.stop_event.set()

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler)
                         for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def setup_logging(ui: bool, log_path: Path | None) -> None:
    """Local mode logs logfmt through the one helper, to stderr or (live view) a file."""
    handler: logging.Handler = (logging.FileHandler(log_path) if ui and log_path is not None
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(LogfmtFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def make_view(ui: bool) -> View:
    return LiveView() if ui else PlainView()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="queueworker local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--filename", required=True, help="QueueWorker manifest (YAML)")
    parser.add_argument("--redis-url", help="use this Redis instead of spec.redis")
    parser.add_argument("--embedded-redis", action="store_true",
                        help="start a local redis-server when the spec's Redis is unreachable")
    parser.add_argument("--data-dir", type=Path,
                        help="data folder of the embedded redis-server (default: a temp dir)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--wait-redis", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for an unreachable spec Redis before giving up "
                             "(for supervisors that start local mode with Redis; default 0)")
    parser.add_argument("--no-ui", action="store_true",
                        help="plain log lines instead of the live view")
    args = parser.parse_args(argv)
    ui = not args.no_ui and sys.stdout.isatty()
    # With the live view, logs (ours and the workers') go to a file, not the screen.
    log_path = Path(tempfile.mkdtemp(prefix="queueworker-local-")) / "local.log" if ui else None
    setup_logging(ui, log_path)
    try:
        name, spec = load_manifest(args.filename)
    except LocalError as exc:
        print(f"queueworker local: {exc}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as stack:
        worker_log = stack.enter_context(open(log_path, "ab")) if log_path else None
        signals = stack.enter_context(Signals())
        view = stack.enter_context(make_view(ui))
        setup = Setup(name=name, spec=spec, redis_url=args.redis_url,
                      embedded_redis=args.embedded_redis, data_dir=args.data_dir,
                      metrics_port=args.metrics_port, wait_redis_seconds=args.wait_redis,
                      worker_log=worker_log)
        try:
            runner = stack.enter_context(session(setup, view))
        except LocalError as exc:
            print(f"queueworker local: {exc}", file=sys.stderr)
            return 1
        signals.runner = runner
        runner.run()
    if log_path is not None:
        print(f"logs: {log_path}")
    return 0
