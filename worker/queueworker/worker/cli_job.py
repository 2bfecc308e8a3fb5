"""``queueworker job ID``: a job's status (state, deliveries, tries, progress, result, error...)
as JSON.

    queueworker job ID                       # now
    queueworker job ID --wait --timeout 300  # when it has finished (results.py)
    queueworker job ID --follow              # one JSON line per progress report, then the end

With ``--wait`` or ``--follow`` the exit code tells the outcome: 0 done, 1 failed
(its error on stderr) or unknown, 124 still not finished after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from queueworker.worker.cli_common import (
    CliError,
    add_redis_options,
    connect,
    fail,
    prefix,
    redis_url,
)
from queueworker.worker.connection import async_client
from queueworker.worker.crypto import CryptoError
from queueworker.worker.producer import AsyncProducer, Producer
from queueworker.worker.results import JobFailedError, JobNotFoundError, WaitTimeoutError

EXIT_TIMEOUT = 124  # as timeout(1)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker job", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("id")
    p.add_argument("--wait", action="store_true", help="wait until the job has finished")
    p.add_argument("--follow", action="store_true",
                   help="print progress reports as they come, then the final state")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --wait/--follow: give up after S seconds (default: no limit)")
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        return fail("--timeout must be positive", 2)
    if args.follow:
        try:
            connect(args).close()  # one clear line when Redis is not there
            return asyncio.run(_follow(redis_url(args), prefix(args), args.id, args.timeout))
        except CliError as exc:
            return fail(str(exc), 3)
        except (CryptoError, JobNotFoundError) as exc:
            return fail(str(exc), 1)
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


async def _follow(url: str, pre: str, job_id: str, seconds: float | None) -> int:
    client = async_client(url, decode_responses=True)
    last: dict[str, Any] = {}
    try:
        async for last in AsyncProducer(client, pre).follow(job_id, seconds):
            print(json.dumps(last, sort_keys=True), flush=True)
    finally:
        await client.aclose()
    if last.get("state") == "done":
        return 0
    if last.get("state") == "failed":
        return fail(f"job {job_id} failed: {last.get('error', '')}")
    return fail(f"job {job_id} did not finish in time (--timeout {seconds or 0:g})",
                EXIT_TIMEOUT)
