"""``queueworker job ID``: a job's status (state, deliveries, tries, error, ...) as JSON."""

from __future__ import annotations

import argparse
import json

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.producer import Producer


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker job", description=__doc__)
    add_redis_options(p)
    p.add_argument("id")
    args = p.parse_args(argv)
    try:
        info = Producer(connect(args), prefix(args)).job(args.id)
    except CliError as exc:
        return fail(str(exc), 3)
    if info is None:
        return fail(f"no job {args.id!r} (never enqueued, or finished and expired)", 1)
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0
