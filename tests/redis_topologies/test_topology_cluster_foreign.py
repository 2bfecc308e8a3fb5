"""Foreign layouts on a real 6-node Redis Cluster: a real BullMQ worker and producer
(prefix '{bull}', an ioredis Cluster connection) read by the operator's readers, busy and
idle, through the sync pipeline and the Batcher; Laravel, list and stream queues written
as their libraries write them, and blocked Laravel connections on two primaries found by
CLIENT LIST asked of every primary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.cluster

from queueworker.engine.types import QueueDepth
from queueworker.observe import busy, reading
from queueworker.observe.batch import Batcher
from queueworker.observe.busy import BusyReading, PodRef
from queueworker.operator.api import QueueLayout, QueueSpec
from queueworker.worker import connection

from support.engine_layouts import NODE_DIR, ensure_node
from support.laravel_app import PREFIX, make_app
from support.redis_cluster import ClusterSetup
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

BULL = QueueSpec(name="render", layout=QueueLayout.bullmq, key_prefix="{bull}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.cleanup()


def _nodes(cluster: ClusterSetup) -> str:
    return ",".join(cluster.addresses)


def _read(r: redis.cluster.RedisCluster, queues: list[QueueSpec], pods: list[PodRef]
          ) -> tuple[dict[str, QueueDepth], BusyReading]:
    got, found = busy.read_sync(r, queues, time.time(), pods)  # type: ignore[arg-type]
    assert not found.errors
    return {d.name: d for d in got}, found


def _states(found: BusyReading, pods: list[PodRef]) -> dict[str, str]:
    return {p.name: found.beats[p.name].state if p.name in found.beats else "unknown"
            for p in pods}


async def _batched(cluster: ClusterSetup, queues: list[QueueSpec], pods: list[PodRef]
                   ) -> tuple[dict[str, QueueDepth], BusyReading]:
    client = connection.cluster_async(cluster.url())
    try:
        got, found = await reading.aread_batched(Batcher(client, 0.0), queues, time.time(),
                                                 pods)
    finally:
        await client.aclose()
    return {d.name: d for d in got}, found


def test_a_real_bullmq_worker_on_a_cluster_read_busy_and_idle(
        cluster: ClusterSetup, tmp_path: Path) -> None:
    ensure_node()
    r = connection.cluster_sync(cluster.url())
    pods = [PodRef("pod-a")]
    worker = subprocess.Popen(["node", "bullmq_cluster.mjs", "worker", _nodes(cluster),
                               "{bull}", "render", str(tmp_path), "pod-a"],
                              cwd=NODE_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        wait_until(lambda: _states(_read(r, [BULL], pods)[1], pods) == {"pod-a": "idle"},
                   20, 0.2, "the named worker blocked in BZPOPMIN: idle")
        subprocess.run(["node", "bullmq_cluster.mjs", "add", _nodes(cluster), "{bull}",
                        "render", "j1:6", "j2:0"], cwd=NODE_DIR, check=True, timeout=60)
        wait_until(lambda: (tmp_path / "j1.start").exists(), 20, 0.1, "j1 started")
        depths, found = _read(r, [BULL], pods)
        assert _states(found, pods) == {"pod-a": "busy"}  # `pb: pod-a` on the active job
        assert (depths["render"].in_flight, depths["render"].delayed) == (1, 1)
        assert not (tmp_path / "j1.done").exists()  # still running: the claim held
        # The operator's path: the Batcher's cluster pipeline, CLIENT LIST on each primary.
        depths, found = asyncio.run(_batched(cluster, [BULL], pods))
        assert not found.errors
        assert depths["render"].in_flight == 1
        wait_until(lambda: (tmp_path / "j2.done").exists(), 30, 0.2, "both jobs done")
        wait_until(lambda: _states(_read(r, [BULL], pods)[1], pods) == {"pod-a": "idle"},
                   20, 0.2, "idle again")
        depths, _ = _read(r, [BULL], pods)
        assert (depths["render"].waiting, depths["render"].in_flight) == (0, 0)
    finally:
        worker.terminate()
        assert worker.wait(30) == 0, "worker.close() on SIGTERM, then exit 0"
        r.close()


LARAVEL = [QueueSpec(name="{default}", layout=QueueLayout.laravel),
           QueueSpec(name="{emails}", layout=QueueLayout.laravel)]
OTHERS = [QueueSpec(name="plain-jobs", layout=QueueLayout.list),
          QueueSpec(name="events", layout=QueueLayout.stream, consumer_group="g")]


def _laravel_job(created: float) -> str:
    # The payload's fields the reader looks at (Illuminate/Queue/Queue.php createPayload).
    return json.dumps({"uuid": "u", "displayName": "App\\Jobs\\Send", "attempts": 0,
                       "createdAt": int(created)})


def test_laravel_list_and_stream_queues_and_blocked_workers_on_two_primaries(
        cluster: ClusterSetup) -> None:
    r = connection.cluster_sync(cluster.url(), decode_responses=True)
    # the two Laravel queues live on two different primaries (so CLIENT LIST must ask both)
    owners = {q.name: r.get_node_from_key(f"queues:{q.name}").name for q in LARAVEL}
    assert len(set(owners.values())) == 2, owners
    now = time.time()
    # Keys as Laravel's RedisQueue writes them: RPUSH queues:Q, ZADD queues:Q:delayed
    # (score: available_at), ZADD queues:Q:reserved (score: expiry).
    r.rpush("queues:{default}", _laravel_job(now - 30), _laravel_job(now))
    r.zadd("queues:{default}:delayed", {_laravel_job(now): now + 3600})
    r.zadd("queues:{default}:reserved", {_laravel_job(now - 5): now + 90})
    r.rpush("queues:{emails}", _laravel_job(now))
    r.rpush("plain-jobs", "a", "b", "c")
    r.xgroup_create("events", "g", id="0", mkstream=True)
    for i in range(4):
        r.xadd("events", {"i": str(i)})
    # Idle `queue:work` processes: BLPOP on queues:Q:notify, their connection named after
    # their pod (Laravel's `redis.*.name`); one per queue, each on its queue's primary.
    blockers = [redis.Redis(host=host, port=int(port), client_name=f"pod-{i}")
                for i, (host, _, port) in enumerate(o.rpartition(":") for o in owners.values())]
    threads = [_blpop(b, f"queues:{q.name}:notify") for b, q in zip(blockers, LARAVEL,
                                                                     strict=True)]
    pods = [PodRef("pod-0"), PodRef("pod-1"), PodRef("pod-2")]
    try:
        wait_until(lambda: _states(_read(r, LARAVEL, pods)[1], pods)
                   == {"pod-0": "idle", "pod-1": "idle", "pod-2": "unknown"}, 20, 0.2,
                   "both blocked connections seen, each on its own primary")
        queues = LARAVEL + OTHERS
        for depths, found in (_read(r, queues, pods), asyncio.run(_batched(cluster, queues,
                                                                            pods))):
            assert not found.errors
            assert {n: (d.waiting, d.in_flight, d.delayed) for n, d in depths.items()} == {
                "{default}": (2, 1, 1), "{emails}": (1, 0, 0), "plain-jobs": (3, 0, 0),
                "events": (4, 0, 0)}
            age = depths["{default}"].oldest_age_seconds
            assert age is not None
            assert age >= 29
            assert _states(found, pods)["pod-0"] == "idle"
    finally:
        for key in ("queues:{default}:notify", "queues:{emails}:notify"):
            r.rpush(key, 1)  # wake the BLPOPs
        for t in threads:
            t.join(10)
        for b in blockers:
            b.close()
        r.close()


def _blpop(client: redis.Redis, key: str) -> threading.Thread:
    t = threading.Thread(target=client.blpop, args=([key], 30), daemon=True)
    t.start()
    return t


def test_a_real_laravel_worker_on_a_cluster(cluster: ClusterSetup, tmp_path: Path) -> None:
    # Debian's Laravel 8.83 on phpredis's RedisCluster (`redis.clusters`), the queue named
    # '{default}' as Laravel's docs ask; the worker's connection is matched by its IP.
    app = make_app(tmp_path, "redis://unused:1", REDIS_CLUSTER=_nodes(cluster),
                   QUEUE_NAME="{default}")
    marks = tmp_path / "marks"
    marks.mkdir()
    q = QueueSpec(name="{default}", layout=QueueLayout.laravel, key_prefix=PREFIX)
    pods = [PodRef("pod-l", ip="127.0.0.1")]
    r = connection.cluster_sync(cluster.url())
    app.dispatch(marks, "later:0:600")
    worker = app.popen("--sleep=0", "--timeout=60")
    try:
        wait_until(lambda: _states(_read(r, [q], pods)[1], pods) == {"pod-l": "idle"}, 30,
                   0.2, "the idle queue:work blocked in BLPOP on its queue's primary")
        app.dispatch(marks, "long:6", "next:0")
        wait_until(lambda: (marks / "long.start").exists(), 30, 0.1, "the long job started")
        depths, found = _read(r, [q], pods)
        assert _states(found, pods) == {"pod-l": "unknown"}  # running: not blocked
        assert (depths[q.name].waiting, depths[q.name].in_flight, depths[q.name].delayed) == (
            1, 1, 1)
        wait_until(lambda: (marks / "next.done").exists(), 30, 0.2, "both jobs done")
        wait_until(lambda: _states(_read(r, [q], pods)[1], pods) == {"pod-l": "idle"}, 30,
                   0.2, "idle again")
        depths, _ = _read(r, [q], pods)
        assert (depths[q.name].waiting, depths[q.name].in_flight, depths[q.name].delayed) == (
            0, 0, 1)
    finally:
        worker.terminate()
        worker.wait(30)
        r.close()
