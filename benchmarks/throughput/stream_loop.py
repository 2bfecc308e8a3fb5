"""A plain Redis Streams consumer group loop, batched (XREADGROUP COUNT 100, one XACK + XDEL
per batch), for comparison with lists: no lease renewal (XAUTOCLAIM would reclaim by idle
time), no delayed jobs, no retries, no failed store."""

import json
import os
import sys

import redis


def handle(payload: object) -> None:
    return None


def main() -> int:
    r = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    stream, group, me = "plain:stream", "workers", f"c{os.getpid()}"
    while True:
        got = r.xreadgroup(group, me, {stream: ">"}, count=100, block=1000)
        if not got:
            return 0
        ids = []
        for msg_id, fields in got[0][1]:
            handle(json.loads(fields[b"p"]))
            ids.append(msg_id)
        with r.pipeline(transaction=False) as pipe:
            pipe.xack(stream, group, *ids)
            pipe.xdel(stream, *ids)
            pipe.execute()


if __name__ == "__main__":
    sys.exit(main())
