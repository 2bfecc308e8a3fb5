"""``queueworker chain ID`` and ``queueworker batch ID | list | cancel ID`` (flows.py).

    queueworker chain 3f2a...              # state, position, current / failed job (JSON)
    queueworker batch list [--limit N]     # newest first: progress, pending, failed
    queueworker batch 9c1b...              # one batch (JSON)
    queueworker batch cancel 9c1b...       # pending jobs skipped, running ones finish
"""

from __future__ import annotations

import argparse
import json

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.flows import FlowError, Flows


def _flows(args: argparse.Namespace) -> Flows:
    return Flows(connect(args), prefix(args))


def chain_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker chain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("id")
    args = p.parse_args(argv)
    try:
        info = _flows(args).chain_info(args.id)
    except CliError as exc:
        return fail(str(exc), 3)
    if info is None:
        return fail(f"no chain {args.id!r}")
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def batch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("what", help="a batch id, `list`, or `cancel`")
    p.add_argument("id", nargs="?", help="the batch to cancel")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        flows = _flows(args)
        if args.what == "list":
            rows = flows.batches(args.limit)
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print("no batches")
            for b in rows:
                print(f"{b['id']}  {b['name'] or '-':<16} {b['state']:<9} {b['progress']:>3}%  "
                      f"total={b['total']} pending={b['pending']} failed={b['failed']}"
                      f"{'  cancelled' if b['cancelled'] else ''}")
            return 0
        if args.what == "cancel":
            if not args.id:
                return fail("cancel which batch? queueworker batch cancel ID", 2)
            print(f"cancelled {args.id}: {flows.cancel(args.id)} pending job(s) skipped")
            return 0
        info = flows.batch_info(args.what)
    except CliError as exc:
        return fail(str(exc), 3)
    except FlowError as exc:
        return fail(str(exc))
    if info is None:
        return fail(f"no batch {args.what!r}")
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0
