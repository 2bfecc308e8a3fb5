"""The HTTP API's batches, chains and schedules (routes_flows.py) on a real redis-server."""

from __future__ import annotations

import httpx
import redis

from queueworker.worker import keys
from queueworker.worker.flows import Flows, step
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.api_client import Token, bearer


async def test_batches_and_chains(client: httpx.AsyncClient, token: Token,
                                  redis_url: str) -> None:
    flows = Flows(redis.Redis.from_url(redis_url, decode_responses=True))
    bid = flows.batch([step("b", {"i": i}) for i in range(3)], name="import",
                      finally_=step("cb", {}))
    cid = flows.chain([step("b", {}), step("c", {})])
    read, admin = bearer(token(scope="jobs:read")), bearer(token(scope="admin"))
    res = await client.get("/v1/batches", headers=read)
    assert res.status_code == 200
    assert [(b["id"], b["name"], b["total"], b["pending"]) for b in res.json()["batches"]] == [
        (bid, "import", 3, 3)]
    res = await client.get(f"/v1/batches/{bid}", headers=read)
    assert (res.json()["state"], res.json()["progress"]) == ("running", 0)
    res = await client.get(f"/v1/chains/{cid}", headers=read)
    assert (res.json()["queues"], res.json()["position"]) == (["b", "c"], 0)
    assert (await client.post(f"/v1/batches/{bid}/cancel", headers=read)).status_code == 403
    res = await client.post(f"/v1/batches/{bid}/cancel", headers=admin)
    assert res.json() == {"count": 3}
    assert (await client.post(f"/v1/batches/{bid}/cancel", headers=admin)).status_code == 404
    res = await client.get(f"/v1/batches/{bid}", headers=read)
    assert (res.json()["state"], res.json()["cancelled"], res.json()["skipped"]) == (
        "finished", True, 3)
    assert (await client.get("/v1/chains/0123456789abcdef", headers=read)).status_code == 404
    assert (await client.get("/v1/batches/not-an-id", headers=read)).status_code == 422


async def test_schedules_list_pause_resume_trigger(client: httpx.AsyncClient, token: Token,
                                                   redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ScheduleStore(r).register([Schedule("nightly", queue="reports", cron="0 3 * * *",
                                        tz="Europe/Berlin", payload={"k": 1})])
    read, admin = bearer(token(scope="jobs:read")), bearer(token(scope="admin"))
    res = await client.get("/v1/schedules", headers=read)
    (row,) = res.json()["schedules"]
    assert (row["name"], row["queue"], row["paused"]) == ("nightly", "reports", False)
    assert row["when"] == "cron '0 3 * * *' Europe/Berlin"
    assert (await client.post("/v1/schedules/nightly/pause", headers=read)).status_code == 403
    res = await client.post("/v1/schedules/nightly/pause", headers=admin)
    assert res.json()["paused"] is True
    res = await client.post("/v1/schedules/nightly/resume", headers=admin)
    assert res.json()["paused"] is False
    assert res.json()["next_due"] is not None
    res = await client.post("/v1/schedules/nightly/trigger", headers=admin)
    assert res.json()["queue"] == "reports"
    assert r.lrange(keys.waiting("reports"), 0, -1) == [res.json()["id"]]
    assert (await client.post("/v1/schedules/nope/trigger", headers=admin)).status_code == 404
