"""A real 6-node Redis Cluster (tests/support/redis_cluster.py) through the factory's
redis+cluster:// clients: where a queue's keys land; a native worker over queues of three
hash slots (jobs, delays, unique, failed, retry, results, progress); chains and batches in
one slot; the CLI, the HTTP API, the operator's and local mode's readers, local mode.
Faults under load: test_topology_cluster_faults.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from queueworker.api.app import create_app
from queueworker.cli import main as qw
from queueworker.observe import connections as redis_conn
from queueworker.observe import heartbeats, reading, reading_sync
from queueworker.observe.batch import Batcher
from queueworker.operator.validation import SpecError, parse_spec
from queueworker.worker import connection, keys
from queueworker.worker.failed import FailedStore
from queueworker.worker.flows import FlowError, Flows, step
from queueworker.worker.job import Job
from queueworker.worker.producer import Producer
from queueworker.worker.queues import depths
from queueworker.worker.runtime import Worker
from queueworker.worker.scheduler import Scheduler
from queueworker.worker.schedules import Schedule, ScheduleError

from support.api_client import bearer, make_token, settings_for
from support.local_proc import LocalProc, local_cmd, write_manifest
from support.redis_cluster import ClusterSetup
from support.worker_inproc import fast_settings, run_until, table
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.cleanup()


def test_cluster_clients_reach_every_master(cluster: ClusterSetup) -> None:
    client = connection.cluster_sync(cluster.url(), decode_responses=True)
    try:
        masters = {n.name for n in client.get_primaries()}
        assert len(masters) == 3
        names = [f"k{i}" for i in range(64)]
        with client.pipeline() as pipe:  # redis-py splits it: one pipeline per node
            for k in names:
                pipe.set(k, k)
            pipe.execute()
        assert {client.get_node_from_key(k).name for k in names} == masters
        assert [client.get(k) for k in names] == names
    finally:
        client.close()


async def test_a_queues_keys_share_one_slot_on_a_real_cluster(cluster: ClusterSetup) -> None:
    client = connection.cluster_async(cluster.url(), decode_responses=True)
    try:
        queue_keys = [keys.waiting("emails"), keys.delayed("emails"), keys.inflight("emails"),
                      keys.stats("emails"), keys.notify("emails"), keys.rate("emails", 7)]
        slots = {await client.cluster_keyslot(k) for k in queue_keys}
        assert len(slots) == 1
        # ... and so does a job hash: job ids name their queue (keys.job)
        assert await client.cluster_keyslot(keys.job("1732400000000-ab@emails")) in slots
    finally:
        await client.aclose()


QUEUES = ("emails", "reports", "audio")  # three hash slots (asserted below)


async def test_a_native_worker_serves_queues_of_several_slots(cluster: ClusterSetup) -> None:
    """Enqueue, run, settle, delay, unique, fail and retry across three slots: one script
    call per slot (keys.slot_groups), every job accounted for."""
    url = cluster.url()
    assert len({keys.slot(q) for q in QUEUES}) == 3
    r = connection.sync_client(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    ids = producer.enqueue_many("emails", [{"n": i} for i in range(10)])
    ids += [producer.enqueue(QUEUES[i % 3], {"n": i}) for i in range(10, 40)]
    ids.append(producer.enqueue("reports", {"n": 100}, delay=0.3))
    first = producer.enqueue_result("audio", {"n": 101}, unique_key="u")
    assert not producer.enqueue_result("audio", {"n": 102}, unique_key="u").created
    bad = producer.enqueue("audio", {"fail": True}, max_tries=1)
    seen: list[int] = []

    async def handler(payload: dict[str, Any], job: Job) -> int:
        if payload.get("fail"):
            raise RuntimeError("planned")
        seen.append(payload["n"])
        if payload["n"] in (10, 11, 12):  # queues of three slots: one script each
            job.progress(0.5, {"n": payload["n"]})
            await asyncio.sleep(0.5)  # still running when the report is written
        return int(payload["n"]) * 10

    async def settled() -> bool:
        return (all(producer.job(i)["state"] == "done" for i in [*ids, first.id])  # type: ignore[index]
                and FailedStore(r).ids() == [bad])

    worker = Worker(fast_settings(url, queues=list(QUEUES)), table(handler))
    assert await run_until(worker, settled, 30) == 0
    assert sorted(seen) == [*range(40), 100, 101]
    assert producer.result(first.id) == 1010  # results (WAIT_CHECK in the job's slot)
    assert producer.wait(ids[-1], timeout=5) == 1000
    for i in ids[10:13]:  # progress reports, one script per slot
        assert (producer.job(i) or {}).get("progress") == 0.5, producer.job(i)
    with pytest.raises(ScheduleError, match="Redis Cluster"):
        Scheduler(connection.async_client(url), [Schedule("s", every=5)])
    assert FailedStore(r).retry_ids([bad]) == [bad]
    assert r.lrange(keys.waiting("audio"), 0, -1) == [bad]
    assert {d.queue: d.failed for d in depths(r, "qw", list(QUEUES))} == dict.fromkeys(QUEUES, 0)
    with pytest.raises(FlowError, match=r"queues emails \(slot \d+\), reports"):
        Flows(r).batch([step("emails", {"n": 1}), step("reports", {"n": 2})])
    r.close()


async def test_chains_and_batches_in_one_slot_run_on_a_cluster(cluster: ClusterSetup) -> None:
    """A chain and a batch (with its callbacks) whose queues share one slot: their hashes are
    in that slot (the ids name the queue), SETTLE moves them on there."""
    url = cluster.url()
    r = connection.sync_client(url, decode_responses=True)
    flows = Flows(r)
    cid = flows.chain([step("flows", {"n": 1}), step("flows", {"n": 2})], with_result=True)
    bid = flows.batch([step("flows", {"n": i}) for i in range(10, 15)],
                      then=step("flows", {"n": 99}), finally_=step("flows", {"n": 98}))
    seen: list[int] = []

    async def handler(payload: dict[str, Any]) -> int:
        seen.append(int(payload["n"]))
        await asyncio.sleep(0)
        return int(payload["n"])

    async def finished() -> bool:
        return ((flows.chain_info(cid) or {}).get("state") == "done"
                and (flows.batch_info(bid) or {}).get("state") == "finished"
                and {98, 99} <= set(seen))

    worker = Worker(fast_settings(url, queues=["flows"]), table(handler))
    assert await run_until(worker, finished, 30) == 0
    assert sorted(seen) == [1, 2, *range(10, 15), 98, 99]
    assert [b["id"] for b in flows.batches()] == [bid]
    r.close()


def test_the_cli_on_a_cluster(cluster: ClusterSetup, capsys: pytest.CaptureFixture[str]
                              ) -> None:
    """enqueue, job, queues, failed list / retry / flush, pause and clear through
    --redis-url redis+cluster://."""
    url = cluster.url()
    r = connection.sync_client(url, decode_responses=True)
    base = ["--redis-url", url]
    assert qw(["enqueue", *base, "cli-a", '{"x": 1}']) == 0
    job_id = capsys.readouterr().out.strip().split()[-1]
    assert keys.queue_of_id(job_id) == "cli-a"
    assert qw(["job", *base, job_id]) == 0
    assert '"state": "waiting"' in capsys.readouterr().out
    r.hset(keys.job(job_id), mapping={"state": "failed", "error": "E: x"})
    r.lrem(keys.waiting("cli-a"), 0, job_id)
    r.zadd(keys.failed("cli-a"), {job_id: 1})
    assert qw(["queues", *base, "--json"]) == 0
    rows = {d["queue"]: d for d in json.loads(capsys.readouterr().out)}
    assert rows["cli-a"]["failed"] == 1
    assert qw(["failed", "list", *base]) == 0
    assert job_id in capsys.readouterr().out
    assert qw(["failed", "retry", *base, job_id]) == 0
    assert r.lrange(keys.waiting("cli-a"), 0, -1) == [job_id]
    assert qw(["queue", "pause", *base, "cli-a"]) == 0
    assert qw(["queue", "clear", *base, "cli-a", "--yes"]) == 0
    assert r.llen(keys.waiting("cli-a")) == 0
    r.close()


async def test_the_http_api_on_a_cluster(cluster: ClusterSetup) -> None:
    """`queueworker api` over redis+cluster://: enqueue, a job's status (its id names its
    queue), queue depths, failed list / retry / forget, workers."""
    app = create_app(settings_for(cluster.url()))
    h = bearer(make_token(scope="admin"))
    r = connection.sync_client(cluster.url(), decode_responses=True)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            made = await c.post("/v1/queues/api-a/jobs", headers=h, json={"payload": {"x": 1}})
            assert made.status_code == 201, made.text
            job_id = made.json()["id"]
            got = await c.get(f"/v1/jobs/{job_id}", headers=h)
            assert got.json()["state"] == "waiting"
            assert (await c.get("/v1/queues/api-a", headers=h)).json()["waiting"] == 1
            r.lrem(keys.waiting("api-a"), 0, job_id)
            r.hset(keys.job(job_id), mapping={"state": "failed", "error": "E: x"})
            r.zadd(keys.failed("api-a"), {job_id: time.time()})
            rows = (await c.get("/v1/failed", headers=h)).json()["failed"]
            assert job_id in {x["id"] for x in rows}
            assert (await c.post(f"/v1/failed/{job_id}/retry", headers=h)).json() == {
                "count": 1}
            assert r.lrange(keys.waiting("api-a"), 0, -1) == [job_id]
            r.zadd(keys.failed("api-a"), {job_id: time.time()})
            assert (await c.delete(f"/v1/failed/{job_id}", headers=h)).json() == {"count": 1}
            assert (await c.get("/v1/workers", headers=h)).status_code == 200
            cancel = await c.post("/v1/batches/0123456789abcdef/cancel", headers=h)
            assert cancel.status_code == 404
    finally:
        await app.state.qw.redis.aclose()
        r.close()


async def test_the_operators_readers_read_a_cluster(cluster: ClusterSetup) -> None:
    """Depths of native queues in three slots and the native heartbeats, as the operator
    (one batched pipeline: one per node) and local mode read them; the spec through
    observe/connections.py. Other layouts are refused with the reason (SpecValid)."""
    spec = parse_spec({"redis": {"url": cluster.url()},
                       "queues": [{"name": q} for q in QUEUES],
                       "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    target = redis_conn.target_from_spec(spec.redis)
    r = target.sync_client(decode_responses=True)
    producer = Producer(r, keyring=None)
    for i, q in enumerate(QUEUES):
        producer.enqueue_many(q, [{"n": n} for n in range(i + 2)])
    beat = {"id": "w1", "pod": "pod-1", "queues": list(QUEUES), "state": "busy",
            "in_flight": [{"id": "j", "queue": "emails", "started_at": time.time()}]}
    r.set(keys.worker("w1"), json.dumps(beat), ex=30)
    r.zadd(keys.workers(), {"w1": time.time()})
    before = {q: keys.slot(q) for q in QUEUES}
    client = target.async_client()
    try:
        batcher = Batcher(client, 0.0)
        got, _ = await reading.aread_batched(batcher, spec.queues, time.time(), [])
        beats = await heartbeats.aread(client, keys.DEFAULT_PREFIX)
    finally:
        await client.aclose()
    waiting = {d.name: d.waiting for d in got}
    queued = {q: int(r.llen(keys.waiting(q))) for q in QUEUES}
    assert waiting == queued
    assert beats["pod-1"].busy
    local, why = reading_sync.read_queues(r, spec, time.time())
    assert why is None
    assert {d.name: d.waiting for d in local or ()} == waiting
    assert {q: keys.slot(q) for q in QUEUES} == before
    for layout, why in (("rq", "RQ, Celery"), ("bullmq", "bullmq queue needs a hash tag")):
        with pytest.raises(SpecError, match=why):
            parse_spec({"redis": {"url": cluster.url()},
                        "queues": [{"name": "q", "layout": layout, "keyPrefix": "b"}],
                        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    r.delete(*(keys.waiting(q) for q in QUEUES))  # the next tests count their own jobs
    r.close()


def test_local_mode_scales_native_workers_on_a_cluster(cluster: ClusterSetup,
                                                      tmp_path: Path) -> None:
    """`queueworker local` on a redis+cluster:// spec: it reads the queues of three slots,
    starts workers (which get the cluster URL), every job runs, and it goes back to zero."""
    url = cluster.url()
    r = connection.sync_client(url, decode_responses=True)
    queues = ("mail", "thumbs", "scans")
    assert len({keys.slot(q) for q in queues}) == 3
    manifest = write_manifest(tmp_path, url, queues=queues, max_replicas=2, target=4)
    local = LocalProc(local_cmd(manifest))
    try:
        local.wait_for("status ")
        producer = Producer(r, keyring=None)
        for n in range(24):
            producer.enqueue(queues[n % 3], {"n": n, "seconds": 0.05})
        local.wait_for(" -> 2: ", timeout=30)
        wait_until(lambda: r.scard("t:done") == 24, 60, 0.2, "every job done")
        local.wait_for(" -> 0: ", timeout=60)
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    assert r.hvals("t:runs") == ["1"] * 24  # none twice
    r.close()
