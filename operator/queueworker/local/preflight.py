"""The worker command, checked once before any replica starts.

Without this, a command that is not installed, or a native worker whose
`--handler` cannot be imported from here, shows up as replicas crash-looping
(`crashed=5`) with the reason buried in the workers' log. Local mode runs the
checks below first and stops with one error instead:

- the program (`argv[0]`) is on PATH (for every command);
- for the native worker, its own argument parsing and handler loading
  (`queueworker.worker.cli.settings_from`, `handlers.load`), in a child
  process with the replicas' environment and working directory, so the check
  sees what a replica will see and imports nothing into local mode itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

CHECK_TIMEOUT = 60.0  # seconds: a handler module may import heavy libraries
KILLED_TRIES = 3  # checks killed by a signal before the replicas are let start anyway

# Exit 2 and one line on stderr for anything that would stop a replica at start.
_NATIVE_CHECK = """\
import os, sys
sys.path.insert(0, os.getcwd())
from queueworker.worker import cli, handlers
try:
    handlers.load(cli.settings_from(cli.parser().parse_args(sys.argv[1:])).handlers)
except handlers.HandlerError as exc:
    sys.exit(str(exc))
except Exception as exc:  # the handler module itself fails to import
    sys.exit(f"{type(exc).__name__}: {exc}")
"""


def native_args(argv: list[str]) -> list[str] | None:
    """The worker's own arguments when `argv` runs the native worker, else None."""
    if argv[1:4] == ["-m", "queueworker.cli", "worker"]:
        return argv[4:]
    return None


def check(argv: list[str], env: Mapping[str, str]) -> str | None:
    """Why replicas of `argv` cannot run here, or None when they can start."""
    full_env = {**os.environ, **env}
    if shutil.which(argv[0], path=full_env.get("PATH")) is None:
        return (f"the worker command {argv[0]!r} is not installed or not on PATH "
                "(template.spec.containers[0].command)")
    args = native_args(argv)
    if args is None:
        return None
    for _ in range(KILLED_TRIES):
        try:
            done = subprocess.run([argv[0], "-c", _NATIVE_CHECK, *args], env=full_env,
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=CHECK_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return f"loading the worker's handler took over {CHECK_TIMEOUT:.0f}s"
        # Killed by a signal from outside (the OOM killer, a supervisor, the chaos
        # harness): that says nothing about the command, so check again.
        if done.returncode >= 0:
            break
    if done.returncode <= 0:  # passed, or killed every time: let replicas show it
        return None
    lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    why = lines[-1] if lines else f"exit code {done.returncode}"
    return f"the worker cannot start: {why} (working directory {os.getcwd()})"
