"""Enqueue, job status, queues, workers and the failed store through the API (real Redis)."""

from __future__ import annotations

import json
import time

import httpx
import redis

from queueworker.api.app import create_app
from queueworker.worker import keys

from support.api_client import Token, bearer, settings_for
from support.redis_server import free_port


async def test_enqueue_with_options_is_one_job_with_them(client: httpx.AsyncClient, token: Token,
                                                         redis_url: str) -> None:
    h = bearer(token())
    r = await client.post("/v1/queues/audio/jobs", headers=h, json={
        "payload": {"file": "a.wav"}, "timeout": 2 * 30 + 60, "max_tries": 1, "delay": 5})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True
    assert body["queue"] == "audio"
    stored = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(
        keys.job(body["id"], "qw"))
    assert (stored["timeout"], stored["max_tries"], json.loads(stored["payload"])) == (
        "120", "1", {"file": "a.wav"})
    status = (await client.get(f"/v1/jobs/{body['id']}", headers=h)).json()
    assert (status["state"], status["queue"], status["max_tries"]) == ("delayed", "audio", 1)
    assert "payload" not in status


async def test_a_unique_key_returns_the_existing_job(client: httpx.AsyncClient,
                                                     token: Token) -> None:
    h = bearer(token())
    first = (await client.post("/v1/queues/q/jobs", headers=h,
                               json={"payload": 1, "unique_key": "k"})).json()
    again = (await client.post("/v1/queues/q/jobs", headers=h,
                               json={"payload": 2, "unique_key": "k"})).json()
    assert (again["id"], again["created"]) == (first["id"], False)


async def test_bad_enqueue_input_is_422_naming_the_field(client: httpx.AsyncClient,
                                                         token: Token) -> None:
    h = bearer(token())
    cases = [({"payload": 1, "priority": 11}, "priority"),
             ({"payload": 1, "timeout": 0}, "timeout"),
             ({"payload": 1, "max_tries": 0}, "max_tries"),
             ({"payload": 1, "colour": "red"}, "colour"),
             ({}, "payload"),
             ({"payload": 1, "backoff": "sometimes"}, "backoff")]
    for body, named in cases:
        r = await client.post("/v1/queues/q/jobs", headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert named in r.text, (body, r.text)
    r = await client.post("/v1/queues/a%7Bb%7D/jobs", headers=h, json={"payload": 1})
    assert r.status_code == 422
    r = await client.post("/v1/queues/q/jobs", headers={**h, "content-type": "application/json"},
                          content=b"{not json")
    assert r.status_code == 422


async def test_unknown_job_is_404(client: httpx.AsyncClient, token: Token) -> None:
    r = await client.get("/v1/jobs/1700000000000-00", headers=bearer(token()))
    assert r.status_code == 404
    assert "no job '1700000000000-00'" in r.json()["detail"]


async def test_queue_status_counts_every_place_a_job_can_be(client: httpx.AsyncClient,
                                                            token: Token, redis_url: str) -> None:
    h = bearer(token())
    for body in ({"payload": 1}, {"payload": 2}, {"payload": 3, "delay": 60}):
        assert (await client.post("/v1/queues/q1/jobs", headers=h, json=body)).status_code == 201
    redis.Redis.from_url(redis_url).zadd(keys.inflight("q1", "qw"), {"x": time.time() + 30})
    q = (await client.get("/v1/queues/q1", headers=h)).json()
    assert (q["waiting"], q["delayed"], q["in_flight"]) == (2, 1, 1)
    assert q["stats"]["enqueued"] == 3
    assert sum(q["by_priority"].values()) == 2
    assert 0 <= q["oldest_waiting_seconds"] < 60
    assert q["paused"] is False
    listed = (await client.get("/v1/queues", headers=h)).json()["queues"]
    assert [x["queue"] for x in listed] == ["q1"]


async def test_workers_are_the_live_heartbeats(client: httpx.AsyncClient, token: Token,
                                               redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    beat = {"id": "w1", "pod": "p", "host": "h", "pid": 1, "queues": ["audio"], "state": "busy",
            "in_flight": [{"id": "j", "queue": "audio", "started_at": now}], "processed": 3,
            "failed": 1, "started_at": now - 10, "beat_at": now}
    r.zadd(keys.workers("qw"), {"w1": now, "gone": now - 100})
    r.set(keys.worker("w1", "qw"), json.dumps(beat), ex=30)
    body = (await client.get("/v1/workers", headers=bearer(token()))).json()
    assert (body["busy"], body["idle"]) == (1, 0)
    assert [w["id"] for w in body["workers"]] == ["w1"]
    assert body["workers"][0]["in_flight"][0]["id"] == "j"


def _failed_job(redis_url: str, job_id: str, queue: str = "q") -> None:
    r = redis.Redis.from_url(redis_url)
    r.hset(keys.job(job_id, "qw"), mapping={
        "queue": queue, "payload": "{}", "state": "failed", "tries": "3",
        "error": "Boom: no\nmore", "traceback": "Traceback ...", "failed_at": repr(time.time())})
    r.zadd(keys.failed(queue, "qw"), {job_id: time.time()})
    r.hincrby(keys.stats(queue, "qw"), "failed", 1)  # as a worker counts it (queues found by it)


async def test_failed_store_list_show_retry_forget(client: httpx.AsyncClient, token: Token,
                                                   redis_url: str) -> None:
    h = bearer(token(scope="admin"))
    _failed_job(redis_url, "1700000000000-aa", "q")
    _failed_job(redis_url, "1700000000001-bb", "other")
    rows = (await client.get("/v1/failed", headers=h)).json()["failed"]
    assert {x["id"] for x in rows} == {"1700000000000-aa", "1700000000001-bb"}
    rows = (await client.get("/v1/failed?queue=q", headers=h)).json()["failed"]
    assert [(x["id"], x["tries"], x["error"]) for x in rows] == [
        ("1700000000000-aa", 3, "Boom: no")]
    shown = (await client.get("/v1/failed/1700000000000-aa", headers=h)).json()
    assert shown["traceback"] == "Traceback ..."
    r = await client.post("/v1/failed/1700000000000-aa/retry", headers=h)
    assert r.json() == {"count": 1}
    assert redis.Redis.from_url(redis_url).llen(keys.waiting("q", "qw")) == 1
    again = await client.post("/v1/failed/1700000000000-aa/retry", headers=h)
    assert again.status_code == 404
    assert (await client.delete("/v1/failed/1700000000001-bb", headers=h)).json() == {"count": 1}
    assert not redis.Redis.from_url(redis_url).exists(keys.job("1700000000001-bb", "qw"))


async def test_forget_never_deletes_a_job_that_is_not_failed(client: httpx.AsyncClient,
                                                             token: Token, redis_url: str) -> None:
    h = bearer(token(scope="admin"))
    job_id = (await client.post("/v1/queues/q/jobs", headers=h, json={"payload": 1})).json()["id"]
    assert (await client.delete(f"/v1/failed/{job_id}", headers=h)).status_code == 404
    assert (await client.get(f"/v1/jobs/{job_id}", headers=h)).status_code == 200


async def test_redis_down_is_503_not_500(token: Token) -> None:
    app = create_app(settings_for(f"redis://127.0.0.1:{free_port()}/0"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as c:
        r = await c.get("/v1/queues", headers=bearer(token()))
        assert r.status_code == 503
        assert "Redis cannot be reached" in r.json()["detail"]
        assert (await c.get("/healthz")).status_code == 503
    await app.state.qw.redis.aclose()


async def test_pause_and_resume_a_queue(client: httpx.AsyncClient, token: Token,
                                        redis_url: str) -> None:
    from queueworker.worker.admin import paused_queues

    h = bearer(token(scope="admin"))
    assert (await client.post("/v1/queues/audio/pause", headers=h)).json() == {
        "queue": "audio", "paused": True}
    assert paused_queues(redis.Redis.from_url(redis_url)) == {"audio"}
    assert (await client.get("/v1/queues/audio", headers=h)).json()["paused"] is True
    forbidden = await client.post("/v1/queues/audio/resume", headers=bearer(token()))
    assert forbidden.status_code == 403
    assert (await client.post("/v1/queues/audio/resume", headers=h)).json()["paused"] is False
    assert paused_queues(redis.Redis.from_url(redis_url)) == set()


async def test_an_unknown_query_parameter_is_422_naming_it(client: httpx.AsyncClient,
                                                           token: Token) -> None:
    r = await client.get("/v1/failed?limt=5", headers=bearer(token(scope="admin")))
    assert r.status_code == 422
    assert r.json()["detail"] == ("unknown query parameter(s) 'limt'; "
                                  "this endpoint takes: limit, offset, queue")
    r = await client.get("/v1/failed?queue=a&queue=b", headers=bearer(token(scope="admin")))
    assert r.status_code == 422
    assert "'queue' given more than once" in r.json()["detail"]


async def test_a_junk_entry_in_the_failed_store_can_be_forgotten(
        client: httpx.AsyncClient, token: Token, redis_url: str) -> None:
    junk = '{"raw":1}'  # an entry pushed by hand, filed under itself (scripts.py usable_id)
    _failed_job(redis_url, junk)
    h = bearer(token(scope="admin"))
    assert (await client.get("/v1/failed/%7B%22raw%22%3A1%7D", headers=h)).status_code == 200
    assert (await client.delete("/v1/failed/%7B%22raw%22%3A1%7D", headers=h)).json() == {
        "count": 1}
