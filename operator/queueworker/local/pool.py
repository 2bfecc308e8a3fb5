"""Local mode's pool: each replica is one worker process on this machine.

The pool plays the part a Deployment plays in a cluster: it starts replicas,
stops the ones the engine names first, and gives a stopping replica the same
drain protocol a pod gets: SIGTERM, `QUEUEWORKER_DRAIN_DEADLINE` seconds to
finish or hand its jobs back, SIGKILL at `graceSeconds` (like the kubelet).

A replica is a container here: its own session (`start_new_session`), the
command as its "PID 1". As the kubelet does, SIGTERM goes to that process only
(a worker forwards it to its children its own way: Celery's prefork pool, RQ's
work horse must not get a TERM of their own), but SIGKILL at the grace, and
the end of the main process, take the whole session down, as a container's
PID namespace dies with its PID 1. A process group is not enough: RQ's work
horse calls setpgrp() (rq/worker/worker_classes.py `fork_work_horse`), so it
left a SIGKILLed worker behind and finished its job, which a pod never does.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from queueworker.common.log import log_event
from queueworker.local.orphans import die_with_parent
from queueworker.operator import api
from queueworker.worker.config import ENV_POD_NAME

log = logging.getLogger("queueworker.local.pool")


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    started_at: float  # monotonic
    stopping_since: float | None = None  # monotonic, when SIGTERM was sent
    exit_code: int | None = None
    ended_at: float | None = None

    @property
    def running(self) -> bool:
        return self.exit_code is None


@dataclass
class PoolStats:
    started: int = 0
    exited_ok: int = 0
    exited_failed: int = 0  # non-zero exit without us asking (crash) or after SIGKILL
    killed_after_grace: int = 0
    leftovers_killed: int = 0  # processes still in a replica's session when it ended
    start_errors: int = 0  # the command could not be run at all
    worker_seconds: float = 0.0  # lifetime of replicas that have ended
    exit_codes: list[int] = field(default_factory=list)


def worker_command(spec: api.QueueWorkerSpec) -> list[str]:
    """The command a replica runs: the template's first container's command + args.

    `queueworker ...` (the native runtime) runs with this interpreter, so local
    mode works from a virtualenv without activating it. Any other command runs
    as written (it gets the same environment, but only native workers write
    heartbeats, so the pool then stops the newest replicas first).

    Native workers beat every poll interval (unless the args say otherwise):
    the 5 s default is fine for a cluster, but local mode's short windows want
    busy/idle to be fresh when it picks which replica to stop.
    """
    container = spec.template.spec.containers[0]
    extra = container.model_extra or {}
    command = [str(x) for x in (extra.get("command") or [])]
    args = [str(x) for x in (extra.get("args") or [])]
    argv = command + args
    if not argv:
        argv = ["queueworker", "worker"]
    if argv[0] == "queueworker":
        argv = [sys.executable, "-m", "queueworker.cli", *argv[1:]]
        if len(argv) > 3 and argv[3] == "worker" and not any(
                a.startswith("--heartbeat-interval") for a in argv):
            argv += ["--heartbeat-interval", str(spec.scaling.poll_interval_seconds)]
    return argv


def template_env(spec: api.QueueWorkerSpec) -> dict[str, str]:
    """Plain `env` values of the first container (valueFrom needs a cluster: skipped)."""
    extra = spec.template.spec.containers[0].model_extra or {}
    out: dict[str, str] = {}
    for item in extra.get("env") or []:
        if isinstance(item, dict) and "name" in item and "value" in item:
            out[str(item["name"])] = str(item["value"])
    return out


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`, from /proc (Linux; [] elsewhere)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    out: list[int] = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        # After the command name (which may hold spaces and parentheses):
        # state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            out.append(int(entry))
    return out


def kill_session(sid: int) -> int:
    """SIGKILL every process of session `sid` (the replica's own); how many there were.

    Safe against pid reuse: a pid is not handed out again while a session or
    group of that id still has members (POSIX), and only members are signalled.
    """
    if sys.platform != "linux":
        try:
            os.killpg(sid, signal.SIGKILL)  # without /proc: at least its process group
        except (ProcessLookupError, PermissionError):
            return 0
        return 1
    killed = 0
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


CRASH_BACKOFF_START = 0.5  # seconds before restarting after a first crash
CRASH_BACKOFF_MAX = 10.0  # short: a laptop tool, not a cluster (CrashLoopBackOff caps at 5 min)
HEALTHY_AFTER = 10.0  # a replica that lived this long resets the crash streak


class ProcessPool:
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str],
                 grace_seconds: float, log_file: IO[bytes] | None = None,
                 named: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        # Variables each replica gets with its own name in them (`{name}`), unless
        # set already: Celery's node name, which its `inspect active` replies are
        # keyed by (observe/busy/celery.py), must differ between replicas.
        self.named = dict(named or {})
        self.grace_seconds = grace_seconds
        self.log_file = log_file
        self.replicas: dict[str, Replica] = {}
        # Native workers write heartbeats (busy/idle, ready); other commands do not.
        self.native = argv[1:4] == ["-m", "queueworker.cli", "worker"]
        self.stats = PoolStats()
        self._serial = 0
        # Like CrashLoopBackOff: replicas that keep exiting unasked are started
        # again after a growing delay, not in a tight loop.
        self._crash_streak = 0
        self.backoff_until = 0.0  # monotonic
        self.last_start_error: str | None = None

    # ------------------------------------------------------------------ views

    def active(self) -> list[Replica]:
        """Running and not asked to stop: what a Deployment would count as replicas."""
        return [r for r in self.replicas.values() if r.running and r.stopping_since is None]

    def stopping(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.running and r.stopping_since is not None]

    def running(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.running]

    # ---------------------------------------------------------------- actions

    def start_one(self) -> Replica | None:
        """Start one replica; None when the command cannot be run (then crash backoff)."""
        self._serial += 1
        name = f"{self.name}-{self._serial}"
        # HOSTNAME as in a pod (where it is the pod name): apps that name their
        # workers after it (BullMQ `name: process.env.HOSTNAME`) name them after
        # the replica. Libraries that ask the kernel (RQ, Sidekiq) are mapped by
        # pid instead (observe/busy/).
        env = {**os.environ, **self.env, ENV_POD_NAME: name, "HOSTNAME": name}
        env.update({k: v.format(name=name) for k, v in self.named.items() if k not in env})
        # Workers' output goes to the log file, else to our stderr (fd 2): our
        # stdout is the view.
        out: IO[bytes] | int = self.log_file if self.log_file is not None else 2
        try:
            # Checked here: behind the trampoline a missing command would look
            # like a crash, not like "cannot start".
            if shutil.which(self.argv[0], path=env.get("PATH")) is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            # Own session: Ctrl-C in the terminal goes to local mode only, which
            # then drains the workers itself with SIGTERM (as a kubelet would).
            proc = subprocess.Popen(die_with_parent(self.argv), env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            # e.g. `php` is not installed here: say so, retry later, do not fall over.
            self.stats.start_errors += 1
            self.last_start_error = f"{self.argv[0]}: {exc.strerror or exc}"
            self._crashed(time.monotonic(), lived=0.0)
            log_event(log, "replica.start_failed", logging.ERROR, cmd=shlex.join(self.argv),
                      error=self.last_start_error)
            return None
        self.last_start_error = None
        replica = Replica(name=name, proc=proc, started_at=time.monotonic())
        self.replicas[name] = replica
        self.stats.started += 1
        log_event(log, "replica.started", name=name, pid=proc.pid, cmd=shlex.join(self.argv))
        return replica

    def stop(self, names: Iterable[str]) -> list[str]:
        """SIGTERM the named active replicas; returns the names actually asked to stop."""
        now = time.monotonic()
        done: list[str] = []
        for name in names:
            replica = self.replicas.get(name)
            if replica is None or not replica.running or replica.stopping_since is not None:
                continue
            replica.stopping_since = now
            self._signal(replica, signal.SIGTERM)
            done.append(name)
            log_event(log, "replica.draining", name=name, pid=replica.proc.pid)
        return done

    def scale_to(self, desired: int, remove_first: Iterable[str] = ()) -> tuple[int, list[str]]:
        """Start or stop replicas until `desired` are active.

        Scale-down order: the engine's `remove_first` (idle first), then the
        newest (least likely to have been handed long jobs). Returns
        (started count, names stopped).
        """
        active = self.active()
        if desired > len(active):
            started = 0
            for _ in range(desired - len(active)):
                if time.monotonic() < self.backoff_until:
                    break
                if self.start_one() is not None:
                    started += 1
            return started, []
        surplus = len(active) - desired
        if surplus <= 0:
            return 0, []
        active_names = {r.name for r in active}
        order = [n for n in remove_first if n in active_names]
        newest_first = sorted(active, key=lambda r: r.started_at, reverse=True)
        order += [r.name for r in newest_first if r.name not in order]
        return 0, self.stop(order[:surplus])

    def reap(self) -> list[Replica]:
        """Collect exited replicas; SIGKILL those past their grace period."""
        now = time.monotonic()
        ended: list[Replica] = []
        for replica in self.replicas.values():
            if not replica.running:
                continue
            code = replica.proc.poll()
            if code is None:
                if (replica.stopping_since is not None
                        and now - replica.stopping_since > self.grace_seconds):
                    log_event(log, "replica.killed_past_grace", logging.WARNING, name=replica.name,
                              grace=self.grace_seconds)
                    self._signal(replica, signal.SIGKILL)
                    self.stats.killed_after_grace += 1
                continue
            self._end_session(replica)
            replica.exit_code = code
            replica.ended_at = now
            self.stats.worker_seconds += now - replica.started_at
            self.stats.exit_codes.append(code)
            if code == 0 and replica.stopping_since is not None:
                self.stats.exited_ok += 1
            else:
                self.stats.exited_failed += 1
            if replica.stopping_since is None:
                self._crashed(now, lived=now - replica.started_at)
            level = logging.INFO if replica.stopping_since is not None else logging.WARNING
            log_event(log, "replica.exited", level, name=replica.name, code=code,
                      asked=replica.stopping_since is not None)
            ended.append(replica)
        # Keep only a bounded history of ended replicas.
        for replica in ended:
            del self.replicas[replica.name]
        return ended

    def worker_seconds(self) -> float:
        """Seconds of replica lifetime so far, ended and running."""
        now = time.monotonic()
        return self.stats.worker_seconds + sum(now - r.started_at for r in self.running())

    def drain_all(self, timeout: float | None = None,
                  force: threading.Event | None = None) -> None:
        """SIGTERM every replica and wait until all have exited (SIGKILL after grace,
        or at once when `force` is set: a second Ctrl-C)."""
        self.stop([r.name for r in self.active()])
        limit = time.monotonic() + (timeout if timeout is not None else self.grace_seconds + 5)
        while self.running() and time.monotonic() < limit:
            if force is not None and force.is_set():
                log_event(log, "pool.forced_stop", logging.WARNING, replicas=len(self.running()))
                break
            self.reap()
            time.sleep(0.05)
        for replica in self.running():
            self._signal(replica, signal.SIGKILL)
            replica.proc.wait()
        self.reap()

    def _end_session(self, replica: Replica) -> None:
        """The replica's main process has ended: nothing of its session may outlive it."""
        left = kill_session(replica.proc.pid)
        if left:
            self.stats.leftovers_killed += left
            log_event(log, "replica.leftovers_killed", logging.WARNING, name=replica.name,
                      processes=left)

    def _crashed(self, now: float, lived: float) -> None:
        self._crash_streak = 1 if lived >= HEALTHY_AFTER else self._crash_streak + 1
        delay = min(CRASH_BACKOFF_MAX, CRASH_BACKOFF_START * 2 ** (self._crash_streak - 1))
        self.backoff_until = max(self.backoff_until, now + delay)

    @staticmethod
    def _signal(replica: Replica, sig: signal.Signals) -> None:
        """SIGTERM to the main process (as the kubelet); SIGKILL to the whole session."""
        if sig == signal.SIGKILL and replica.proc.poll() is None:
            kill_session(replica.proc.pid)
        try:
            replica.proc.send_signal(sig)
        except ProcessLookupError:
            pass
