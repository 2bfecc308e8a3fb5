"""``queueworker failed``: the failed-jobs store (like Laravel's queue:failed).

    queueworker failed list [--queue Q] [--limit N]
    queueworker failed show ID
    queueworker failed retry ID [ID ...] | --all | --queue Q
    queueworker failed forget ID
    queueworker failed flush [--queue Q]
"""

from __future__ import annotations

import argparse
import json
import time

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.failed import FailedStore


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker failed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="failed jobs, newest first")
    ls.add_argument("--queue", default=None)
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one failed job with its error and traceback")
    show.add_argument("id")
    retry = sub.add_parser("retry", help="put failed jobs back on their queue")
    retry.add_argument("ids", nargs="*")
    retry.add_argument("--all", action="store_true")
    retry.add_argument("--queue", default=None)
    forget = sub.add_parser("forget", help="delete one failed job")
    forget.add_argument("id")
    flush = sub.add_parser("flush", help="delete all failed jobs (of one queue)")
    flush.add_argument("--queue", default=None)
    for action in (ls, show, retry, forget, flush):
        add_redis_options(action, sub=True)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        store = FailedStore(connect(args), prefix(args))
    except CliError as exc:
        return fail(str(exc), 3)
    if args.action == "list":
        rows = store.list(args.queue, args.limit)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no failed jobs")
        for r in rows:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["failed_at"] or 0))
            print(f"{r['id']}  {r['queue']:<16} {at}Z  tries={r['tries']}  {r['error']}")
        return 0
    if args.action == "show":
        info = store.show(args.id)
        if info is None:
            return fail(f"no failed job {args.id!r}")
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    if args.action == "retry":
        if args.ids and (args.all or args.queue):
            return fail("give IDs, or --all, or --queue Q", 2)
        if args.ids:
            put = store.retry_ids(args.ids)
            print(f"{len(put)} job(s) put back on their queue")
            unknown = [i for i in dict.fromkeys(args.ids) if i not in set(put)]
            if unknown:
                return fail(f"not in the failed store: {', '.join(unknown)}")
            return 0
        if args.all or args.queue:
            n = store.retry_all(args.queue)
        else:
            return fail("retry what? give IDs, --all or --queue Q", 2)
        print(f"{n} job(s) put back on their queue")
        return 0
    if args.action == "forget":
        if not store.forget(args.id):
            return fail(f"no failed job {args.id!r}")
        print(f"forgot {args.id}")
        return 0
    n = store.flush(args.queue)
    print(f"flushed {n} failed job(s)")
    return 0
