"""`queueworker`: one command, subcommands implemented in their own modules.

Each subcommand lives with the code it drives (worker/..., operator/...) and
exposes ``main(argv) -> int``. Modules are imported only when their command
runs, so `queueworker worker` in a worker image does not import kopf.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "crd": ("queueworker.operator.cli_crd", "print the QueueWorker CRD (generated from the API)"),
    "validate": ("queueworker.operator.cli_validate", "check QueueWorker manifests"),
    "operator": ("queueworker.operator.cli_operator", "run the Kubernetes operator"),
    "simulate": ("queueworker.simulate.cli", "replay a job trace through a scaling policy"),
    "local": ("queueworker.local.session", "run the autoscaler with local worker processes"),
    "demo": ("queueworker.local.demo", "a short local demo: 0 -> N -> 0 workers"),
    "worker": ("queueworker.worker.cli", "run a worker (consume jobs)"),
    "enqueue": ("queueworker.worker.cli_enqueue", "enqueue a job"),
    "job": ("queueworker.worker.cli_job", "look up a job's status (--wait for its result)"),
    "queues": ("queueworker.worker.cli_queues", "waiting / delayed / in flight / failed per queue"),
    "failed": ("queueworker.worker.cli_failed", "list, show, retry, forget, flush failed jobs"),
    "schedule": ("queueworker.worker.cli_schedule", "list, pause, resume, trigger schedules"),
    "queue": ("queueworker.worker.cli_queue", "clear, pause, resume a queue"),
    "restart": ("queueworker.worker.cli_restart", "workers finish their jobs and exit"),
    "chain": ("queueworker.worker.cli_chain", "a chain's state"),
    "batch": ("queueworker.worker.cli_batch", "list, show, cancel batches"),
    "api": ("queueworker.api.cli", "serve the HTTP API (JWT, rate limits, OpenAPI)"),
}


def usage() -> str:
    lines = ["usage: queueworker COMMAND [options]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    lines.append("")
    lines.append("Run `queueworker COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):  # what `docker run IMAGE --version` answers
        print(f"queueworker {importlib.metadata.version('queueworker')}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"queueworker: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"queueworker: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    try:
        code: int = module.main(rest)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one clear line, no traceback wall
        if os.environ.get("QUEUEWORKER_DEBUG"):
            raise
        print(f"queueworker {name}: {describe_error(exc)}", file=sys.stderr)
        print("(set QUEUEWORKER_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
    return code


def describe_error(exc: BaseException) -> str:
    """A one-line explanation, with what to do where we know it; no passwords."""
    import redis  # only when something failed: keeps `queueworker --help` light

    from queueworker.common.errors import QueueworkerError
    from queueworker.common.redact import redact

    text = str(exc).split(" script: ")[0]  # Redis appends the Lua script's sha
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        text = ("Redis is out of memory (maxmemory reached) and refused the write: "
                f"free memory, raise maxmemory or trim the failed store ({text})")
    elif isinstance(exc, redis.exceptions.ReadOnlyError):
        text = f"this Redis is a read-only replica: point the URL at the primary ({text})"
    elif isinstance(exc, redis.exceptions.AuthenticationError):
        text = f"Redis refused the credentials ({text})"
    elif isinstance(exc, redis.exceptions.ConnectionError):
        text = f"cannot reach Redis ({text})"
    elif isinstance(exc, redis.exceptions.RedisError):
        text = f"Redis error: {text}"
    elif isinstance(exc, QueueworkerError):
        pass  # ours: the message already says what is wrong
    else:
        text = f"{type(exc).__name__}: {text}"
    return redact(text)


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
