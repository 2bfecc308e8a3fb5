"""``queueworker job ID``: a job's status (state, deliveries, tries, progress, result, error...)
as JSON.

    queueworker job ID                       # now
    queueworker job ID --wait --timeout 300  # when it has finished (results.py)

With ``--wait`` the exit code tells the outcome: 0 done, 1 failed (its error on
stderr) or unknown, 124 still not finished after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.crypto import CryptoError
from queueworker.worker.producer import Producer
from queueworker.worker.results import JobFailedError, JobNotFoundError, WaitTimeoutError

EXIT_TIMEOUT = 124  # as timeout(1)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker job", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("id")
    p.add_argument("--wait", action="store_true", help="wait until the job has finished")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --wait: give up after S seconds (default: no limit)")
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        return fail("--timeout must be positive", 2)
    try:
        producer = Producer(connect(args), prefix(args))
        code = _wait(producer, args.id, args.timeout) if args.wait else 0
        info = producer.job(args.id)
    except CliError as exc:
        return fail(str(exc), 3)
    except (CryptoError, JobNotFoundError) as exc:
        return fail(str(exc), 1)
    except WaitTimeoutError as exc:
        return fail(f"{exc} (--timeout {args.timeout:g})", EXIT_TIMEOUT)
    if info is None:
        return fail(f"no job {args.id!r} (never enqueued, or finished and expired)", 1)
    print(json.dumps(info, indent=2, sort_keys=True))
    return code


def _wait(producer: Producer, job_id: str, timeout: float | None) -> int:
    try:
        producer.wait(job_id, timeout)
    except JobFailedError as exc:
        fail(str(exc))
        return 1
    return 0
