"""Result, wait (long poll) and the event stream, with an in-process worker (real Redis)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from queueworker.worker.job import Job
from queueworker.worker.runtime import Worker

from support.api_client import Token, bearer
from support.worker_inproc import fast_settings, run_until, table


def parse_sse(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_result_wait_and_events_follow_a_job(client: httpx.AsyncClient, token: Token,
                                                   redis_url: str) -> None:
    h = bearer(token())
    go = asyncio.Event()

    async def handler(payload: Any, job: Job) -> Any:
        job.progress(0.5, detail={"stage": "separating"})
        await go.wait()
        return {"stems": payload["stems"]}

    job_id = (await client.post("/v1/queues/audio/jobs", headers=h, json={
        "payload": {"stems": 4}, "priority": 8})).json()["id"]
    before = (await client.get(f"/v1/jobs/{job_id}/result", headers=h)).json()
    assert (before["state"], before["finished"], before["result"]) == ("waiting", False, None)
    events = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/events", headers=h))
    waited = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/wait?timeout=60", headers=h))

    async def reported() -> bool:
        body = (await client.get(f"/v1/jobs/{job_id}/result", headers=h)).json()
        return body["progress"] == 0.5

    async def finish_when_reported() -> bool:
        if not go.is_set() and await reported():
            short = (await client.get(f"/v1/jobs/{job_id}/wait?timeout=0.1", headers=h)).json()
            assert (short["finished"], short["state"]) == (False, "running")
            go.set()
        return waited.done() and events.done()

    worker = Worker(fast_settings(redis_url, queues=["audio"]), table(handler))
    assert await run_until(worker, finish_when_reported, 30) == 0
    body = (await waited).json()
    assert (body["state"], body["finished"], body["result"]) == ("done", True, {"stems": 4})
    stream = await events
    assert stream.headers["content-type"].startswith("text/event-stream")
    seen = parse_sse(stream.text)
    assert seen[0][0] == "state"
    assert ("progress", {"state": "running", "progress": 0.5,
                         "detail": {"stage": "separating"}}) in seen
    assert seen[-1][0] == "end"
    assert (seen[-1][1]["state"], seen[-1][1]["result"]) == ("done", {"stems": 4})


async def test_a_failure_fails_fast_and_wait_says_why(client: httpx.AsyncClient, token: Token,
                                                      redis_url: str) -> None:
    h = bearer(token())

    def handler(payload: Any) -> Any:
        raise ValueError("not an audio file")

    job_id = (await client.post("/v1/queues/audio/jobs", headers=h, json={
        "payload": {}, "max_tries": 1})).json()["id"]
    waited = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/wait?timeout=60", headers=h))

    async def done() -> bool:
        return waited.done()

    worker = Worker(fast_settings(redis_url, queues=["audio"]), table(handler))
    assert await run_until(worker, done, 30) == 0
    body = (await waited).json()
    assert (body["state"], body["finished"], body["tries"]) == ("failed", True, 1)
    assert "not an audio file" in body["error"]
    ended = parse_sse((await client.get(f"/v1/jobs/{job_id}/events", headers=h)).text)
    assert [e for e, _ in ended] == ["state", "end"]


async def test_unknown_jobs_are_404_everywhere(client: httpx.AsyncClient, token: Token) -> None:
    h = bearer(token())
    for path in ("result", "wait?timeout=1", "events"):
        r = await client.get(f"/v1/jobs/1700000000000-00/{path}", headers=h)
        assert r.status_code == 404, path
    r = await client.get("/v1/jobs/1700000000000-00/wait?timeout=0", headers=h)
    assert r.status_code == 422


async def test_a_sealed_result_without_the_key_says_so(client: httpx.AsyncClient, token: Token,
                                                       redis_url: str) -> None:
    import redis

    from queueworker.worker import keys

    job_id = "1700000000000-5ea1ed"
    redis.Redis.from_url(redis_url).hset(keys.job(job_id, "qw"), mapping={
        "queue": "audio", "state": "done", "result": "enc:1:k1:AAAA", "payload": "{}"})
    h = bearer(token())
    for path in ("result", "wait?timeout=5"):
        body = (await client.get(f"/v1/jobs/{job_id}/{path}", headers=h)).json()
        assert (body["state"], body["finished"], body["result"]) == ("done", True, None), path
        assert "has no keys" in body["unreadable"], path
