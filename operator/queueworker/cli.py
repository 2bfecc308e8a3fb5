"""`queueworker`: one command, subcommands implemented in their own modules.

Each subcommand lives with the code it drives (worker/..., operator/...) and
exposes ``main(argv) -> int``. Modules are imported only when their command
runs, so `queueworker worker` in a worker image does not import kopf.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "crd": ("queueworker.operator.cli_crd", "print the QueueWorker CRD (generated from the API)"),
    "validate": ("queueworker.operator.cli_validate", "check QueueWorker manifests"),
    "operator": ("queueworker.operator.cli_operator", "run the Kubernetes operator"),
    "simulate": ("queueworker.operator.simulate", "replay a job trace through a scaling policy"),
    "local": ("queueworker.operator.local", "run the autoscaler with local worker processes"),
    "demo": ("queueworker.operator.demo", "a short local demo: 0 -> N -> 0 workers"),
    "worker": ("queueworker.worker.cli", "run a worker (consume jobs)"),
    "enqueue": ("queueworker.worker.cli_enqueue", "enqueue a job"),
    "job": ("queueworker.worker.cli_job", "look up a job's status"),
    "failed": ("queueworker.worker.cli_failed", "list, show, retry, forget, flush failed jobs"),
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
    code: int = module.main(rest)
    return code


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
