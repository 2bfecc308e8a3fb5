"""Local mode with a native queue under its own `keyPrefix`.

The workers must keep their keys under the queue's prefix (as the Deployment
builder tells them to in a cluster), and local mode must read depths,
heartbeats and counters there too: otherwise the jobs are never taken, or the
replicas never look ready and the finished jobs are never counted.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from queueworker.local.embedded_redis import free_port
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, local_cmd, manifest_doc
from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

PREFIX = "app"


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf'^{name}\{{namespace="local",queueworker="t"\}} (\S+)$', body, re.M)
    assert match, f"{name} not exported:\n{body[:2000]}"
    return float(match.group(1))


def test_prefixed_native_queue_is_worked_seen_and_counted(tmp_path: Path,
                                                          redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    doc = manifest_doc(redis_url, max_replicas=2, target=2, idle=30)
    doc["spec"]["queues"][0]["keyPrefix"] = PREFIX
    manifest = tmp_path / "qw.yaml"
    manifest.write_text(yaml.safe_dump(doc), encoding="utf-8")
    port = free_port()
    local = LocalProc([*local_cmd(manifest), "--metrics-port", str(port)])
    try:
        local.wait_for("status ")
        producer = Producer(client, prefix=PREFIX)
        producer.enqueue_many("work", ({"n": n, "seconds": 0.2} for n in range(6)))
        local.wait_for("scale up 0 -> ", timeout=20)
        # Ready comes from heartbeats: only seen when read under the queue's prefix.
        wait_until(lambda: _metric(port, "queueworker_ready_replicas") >= 1, 20, 0.1,
                   "a heartbeat under the queue's prefix")
        assert client.zcard(f"{PREFIX}:workers") >= 1
        assert not client.exists("qw:workers"), "a worker kept its keys under the default prefix"
        wait_until(lambda: client.scard("t:done") == 6, 60, 0.1, "all 6 jobs done")
        # The jobs-done count comes from the queue's counters under the prefix.
        start = len(local.lines)
        local.wait_for("done=6 ", timeout=20, start=start)
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0, local.output
    assert client.hgetall("t:runs") == {str(n).encode(): b"1" for n in range(6)}
