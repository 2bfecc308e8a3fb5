"""The drain: a busy pod that is deleted finishes its job before it goes; no job is lost.

The pod runs a real ``queueworker worker`` (support/operator_e2e.py). Deleting
it (as ``kubectl delete pod`` or an eviction does) marks it terminating with
the grace the operator gave the pod template (``spec.drain.graceSeconds``); the
harness's kubelet sends SIGTERM, the worker stops taking jobs, finishes the one
it runs and exits 0, and only then is the pod removed. The queued jobs go to the
replacement pod. Each job runs once.
"""

from __future__ import annotations

import time
from typing import cast

import pytest
import redis

from queueworker.worker.producer import Producer

from support.operator_cluster import PODS, Cluster, wait_for
from support.operator_e2e import ProcessRuntime
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

GRACE = 20
LONG_JOB = 4.0
SHORT_JOBS = 6


def _running(c: Cluster, runtime: ProcessRuntime) -> list[str]:
    return [p["metadata"]["name"] for p in c.pods("drain")
            if not p["metadata"].get("deletionTimestamp") and p["metadata"]["name"]
            in runtime.alive()]


async def test_a_deleted_busy_pod_finishes_its_job_before_it_is_removed(
        redis_url: str) -> None:
    qw = spec(redis_url, ["drain"], poll=0.5, minReplicas=1, maxReplicas=1)
    qw["template"]["spec"]["containers"][0]["args"] = [
        "queueworker", "worker", "--handler", "support.local_jobs:handle", "--concurrency", "1",
        "--heartbeat-interval", "0.5", "--lease", "3"]
    qw["drain"] = {"graceSeconds": GRACE, "deadlineMarginSeconds": 5}
    client = redis.Redis.from_url(redis_url)
    runtime = ProcessRuntime()
    async with Cluster(config=fast_config(), runtime=runtime) as c:
        await c.start_operator()
        await c.create_qw("drain", qw)
        first = (await wait_for(lambda: _running(c, runtime), 20, "a worker process"))[0]
        producer = Producer(client)
        producer.enqueue("drain", {"n": 0, "seconds": LONG_JOB})
        await wait_for(lambda: client.zcard("qw:{drain}:inflight") == 1
                       and not client.llen("qw:{drain}:waiting"), 10, "the long job taken")
        for n in range(1, SHORT_JOBS + 1):
            producer.enqueue("drain", {"n": n, "seconds": 0.1})

        await c.client.delete(f"/api/v1/namespaces/default/pods/{first}", operation="test")
        deleted_at = time.monotonic()
        pod = c.get(PODS, first) or {}
        # Terminating, with the operator's drain grace, and still there.
        assert pod["metadata"]["deletionGracePeriodSeconds"] == GRACE
        await wait_for(lambda: client.sismember("t:done", "0"), LONG_JOB + 5, "the long job")
        done_at = time.monotonic()
        await wait_for(lambda: c.get(PODS, first) is None, 10, "the drained pod removed")
        # The kubelet logs "removed" after its DELETE returns: the store may be quicker.
        await wait_for(lambda: c.kubelet.events(first)[-1:] == ["removed"], 5, "logged")
        assert c.kubelet.events(first)[-3:] == ["sigterm", "exited", "removed"]
        removed_at = c.kubelet.at(first, "removed")
        assert removed_at is not None
        assert removed_at >= done_at - 0.5
        assert removed_at - deleted_at >= 1.0  # it waited for the job, not for nothing
        assert runtime.exit_codes[first] == 0
        await wait_for(lambda: client.scard("t:done") == SHORT_JOBS + 1, 30,
                       "every job done (the replacement took the queued ones)")
        assert _running(c, runtime)
        assert first not in _running(c, runtime)
        runtime.close()
    counts = cast(dict[bytes, bytes], client.hgetall("t:runs"))
    runs = {int(k): int(v) for k, v in counts.items()}
    assert runs == {n: 1 for n in range(SHORT_JOBS + 1)}, runs
