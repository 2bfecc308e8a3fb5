"""``queueworker queue``: clear, pause and resume a native queue.

    queueworker queue clear QUEUE [--yes]   # delete its waiting and delayed jobs
    queueworker queue pause QUEUE           # workers stop taking jobs from it
    queueworker queue resume QUEUE
    queueworker queue paused                # the paused queues

Laravel: queue:clear, queue:pause / queue:continue; BullMQ: queue.drain(),
queue.pause() / queue.resume(). Running jobs are never touched: they finish.
"""

from __future__ import annotations

import argparse
import sys

from queueworker.worker import admin
from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix


def redis_parent() -> argparse.ArgumentParser:
    """--redis-url / --prefix for sub-commands too (``queue clear Q --redis-url U``), as a
    parent parser; cli_common's ``sub`` form keeps a value given before the sub-command."""
    parent = argparse.ArgumentParser(add_help=False)
    add_redis_options(parent, sub=True)
    return parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker queue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    sub = p.add_subparsers(dest="action", required=True)
    common = [redis_parent()]
    clear = sub.add_parser("clear", help="delete the queue's waiting and delayed jobs",
                           parents=common)
    clear.add_argument("queue")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask")
    sub.add_parser("pause", help="workers stop taking jobs from it",
                   parents=common).add_argument("queue")
    sub.add_parser("resume", help="workers take jobs from it again",
                   parents=common).add_argument("queue")
    sub.add_parser("paused", help="list the paused queues", parents=common)
    return p


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        client = connect(args)
    except CliError as exc:
        return fail(str(exc), 3)
    p = prefix(args)
    try:
        if args.action == "paused":
            for q in sorted(admin.paused_queues(client, p)):
                print(q)
            return 0
        q = args.queue
        if args.action == "pause":
            was = not admin.pause_queue(client, q, p)
            print(f"queue {q!r} {'was already' if was else 'is now'} paused")
            return 0
        if args.action == "resume":
            was = admin.resume_queue(client, q, p)
            print(f"queue {q!r} resumed" if was else f"queue {q!r} was not paused")
            return 0
        n = admin.pending(client, q, p)
        if not args.yes and not _confirm(f"delete {n} waiting/delayed job(s) of queue {q!r}?"):
            return fail(f"not cleared: {n} job(s) in {q!r} (confirm at the prompt, or pass "
                        "--yes)", 1)
        removed = admin.clear_queue(client, q, p)
    except ValueError as exc:
        return fail(str(exc), 2)
    print(f"cleared {removed} job(s) from queue {q!r}")
    return 0
