"""``queueworker enqueue QUEUE PAYLOAD``: enqueue one job (PAYLOAD is JSON; ``-`` reads stdin).

    queueworker enqueue emails '{"to": "a@example.com"}' --max-tries 5 --backoff 10,30,60
"""

from __future__ import annotations

import argparse
import json
import sys

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.durable import DurableProducer, NotReplicatedError
from queueworker.worker.job import PayloadError
from queueworker.worker.producer import Producer


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker enqueue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("queue")
    p.add_argument("payload", help="JSON text, or - to read it from stdin")
    p.add_argument("--delay", type=float, default=None, help="seconds before it may run")
    p.add_argument("--max-tries", type=int, default=None)
    p.add_argument("--backoff", default=None, help="10 | 10,30,60 | exp:BASE:CAP")
    p.add_argument("--timeout", type=float, default=None, help="seconds per attempt")
    p.add_argument("--retry-until", type=float, default=None, help="epoch seconds")
    p.add_argument("--unique-key", default=None)
    p.add_argument("--unique-for", type=float, default=None)
    p.add_argument("--concurrency-key", default=None)
    p.add_argument("--concurrency-limit", type=int, default=1)
    p.add_argument("--handler", default=None, help="handler name, for multi-handler workers")
    p.add_argument("--priority", type=int, default=None,
                   help="1 (lowest) .. 10 (highest) within the queue; default 5")
    p.add_argument("--max-exceptions", type=int, default=None,
                   help="fail once this many attempts raised (beside --max-tries)")
    p.add_argument("--result-ttl", type=int, default=None,
                   help="seconds the result is kept (default: the worker's --result-ttl)")
    p.add_argument("--max-payload-bytes", type=int, default=1024 * 1024)
    p.add_argument("--count", type=int, default=1, help="enqueue the payload N times (bulk)")
    p.add_argument("--min-replicas-ack", type=int, default=0, metavar="N",
                   help="succeed only once N replicas have the job (WAIT; worker/durable.py)")
    return p


def _producer(args: argparse.Namespace) -> Producer:
    if args.min_replicas_ack > 0:
        return DurableProducer(connect(args), prefix(args), min_replicas_ack=args.min_replicas_ack,
                               max_payload_bytes=args.max_payload_bytes)
    return Producer(connect(args), prefix(args), args.max_payload_bytes)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    text = sys.stdin.read() if args.payload == "-" else args.payload
    try:
        payload = json.loads(text)
    except ValueError as exc:
        return fail(f"PAYLOAD is not JSON ({exc}); quote it, e.g. '{{\"a\": 1}}' or '\"text\"'", 2)
    try:
        producer = _producer(args)
        options = dict(delay=args.delay, max_tries=args.max_tries, backoff=args.backoff,
                       timeout=args.timeout, retry_until=args.retry_until,
                       unique_key=args.unique_key, unique_for=args.unique_for,
                       concurrency_key=args.concurrency_key,
                       concurrency_limit=args.concurrency_limit, handler=args.handler,
                       max_exceptions=args.max_exceptions, result_ttl=args.result_ttl)
        if args.priority is not None:
            options["priority"] = args.priority
        if args.count > 1:
            for job_id in producer.enqueue_many(args.queue, [payload] * args.count, **options):
                print(job_id)
            return 0
        res = producer.enqueue_result(args.queue, payload, **options)
    except CliError as exc:
        return fail(str(exc), 3)
    except NotReplicatedError as exc:
        return fail(str(exc), 4)
    except (PayloadError, ValueError) as exc:
        return fail(str(exc), 2)
    print(res.id)
    if not res.created:
        print(f"queueworker: a job with unique key {args.unique_key!r} is already queued or "
              "running; nothing added", file=sys.stderr)
    return 0
