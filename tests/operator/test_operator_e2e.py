"""End to end: the real operator scales real worker processes 0 -> N -> 0, none lost.

The emulated Deployment's pods run as `queueworker worker` processes (support/operator_e2e.py);
scale-down deletes pods, which SIGTERMs their processes: they drain (finish or hand back) and
exit 0. Every job is done, and none ran twice (a graceful drain never redelivers).
The cluster is not instant: pods and Deployments reach watchers late, and pods
take a moment to start and to turn Ready.
"""

from __future__ import annotations

import pytest
import redis

from queueworker.worker.producer import Producer

from support.operator_cluster import DEPLOYMENTS, PODS, Cluster, PodTiming, wait_for
from support.operator_e2e import ProcessRuntime
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

JOBS = 60


async def test_real_workers_scale_up_process_everything_and_drain_to_zero(
        redis_url: str) -> None:
    qw = spec(redis_url, ["e2e"], poll=0.5, minReplicas=0, maxReplicas=4,
              targetBacklogPerReplica=5, idleSecondsBeforeZero=2,
              scaleDown={"stabilizationSeconds": 1})
    qw["template"]["spec"]["containers"][0]["args"] = [
        "queueworker", "worker", "--handler", "support.local_jobs:handle", "--concurrency", "2",
        "--heartbeat-interval", "0.5", "--lease", "5"]
    qw["drain"] = {"graceSeconds": 30, "deadlineMarginSeconds": 10}
    client = redis.Redis.from_url(redis_url)
    runtime = ProcessRuntime()
    async with Cluster(config=fast_config(), runtime=runtime,
                       lags={PODS: 0.3, DEPLOYMENTS: 0.2},
                       timing=PodTiming(start_seconds=0.3, ready_seconds=0.3)) as c:
        try:
            await c.start_operator()
            await c.create_qw("e2e", qw)
            await wait_for(lambda: c.replicas("e2e") == 0, 15, "the Deployment at 0")
            producer = Producer(client)
            for n in range(JOBS):
                producer.enqueue("e2e", {"n": n, "seconds": 0.25})
            await wait_for(lambda: (c.replicas("e2e") or 0) >= 2, 10, "scale up")
            await wait_for(lambda: len(runtime.alive()) >= 2, 20, "worker processes up")
            await wait_for(lambda: client.scard("t:done") == JOBS, 90, "every job done")
            await wait_for(lambda: c.replicas("e2e") == 0, 30, "scale back to 0")
            await wait_for(lambda: not runtime.alive(), 40, "every worker process exited")
        finally:
            runtime.close()
    done = {int(x) for x in client.smembers("t:done")}
    assert done == set(range(JOBS)), f"lost: {sorted(set(range(JOBS)) - done)}"
    runs = {int(k): int(v) for k, v in client.hgetall("t:runs").items()}
    assert max(runs.values()) == 1, "a job ran twice although every stop was graceful"
    assert runtime.started >= 2
    assert runtime.exit_codes
    assert set(runtime.exit_codes.values()) == {0}, runtime.exit_codes
