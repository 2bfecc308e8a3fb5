"""The audio-separation flow end to end through the HTTP API: a real redis-server, a real
`queueworker worker` (--concurrency 2) and a real `queueworker api` (uvicorn).

Submit with a priority and ``timeout = 2 x duration + 60``, watch progress (server-sent
events), wait for the result, see a bad file fail fast (one try, no retry), and never more
than two jobs at once on the worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.api_client import bearer, make_token
from support.api_proc import ApiServer
from support.worker_proc import entries, start_worker, stop, wait_until

pytestmark = pytest.mark.slow
DURATION = 1.0  # seconds of "audio" per job


@pytest.fixture
def api(redis_url: str) -> Iterator[ApiServer]:
    server = ApiServer(redis_url, "--rate-limit", "120/60")
    yield server
    server.stop()


def submit(c: httpx.Client, file: str, priority: int, **extra: Any) -> str:
    r = c.post("/v1/queues/audio/jobs", json={
        "payload": {"file": file, "duration": DURATION, **extra}, "priority": priority,
        "timeout": 2 * DURATION + 60, "max_tries": 1})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def follow(c: httpx.Client, job_id: str, into: list[tuple[str, Any]]) -> None:
    """Read the job's event stream to its end (a real streamed response)."""
    with c.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                into.append((event, json.loads(line[len("data: "):])))


def test_audio_separation_through_the_api(redis_url: str, api: ApiServer) -> None:
    h = bearer(make_token(sub="studio", scope="jobs:read jobs:write admin"))
    with httpx.Client(base_url=api.url, headers=h, timeout=30) as c:
        low = submit(c, "low.wav", 1)
        urgent = submit(c, "urgent.wav", 10)
        normal = [submit(c, f"n{i}.wav", 5) for i in range(2)]
        bad = submit(c, "broken.txt", 5, fail=True)
        q = c.get("/v1/queues/audio").json()
        assert (q["by_priority"]["10"], q["by_priority"]["1"], q["waiting"]) == (1, 1, 5)

        events: list[tuple[str, Any]] = []
        watcher = threading.Thread(target=follow, args=(c, urgent, events), daemon=True)
        watcher.start()
        wait_until(lambda: bool(events), what="the event stream's first event")
        worker = start_worker(redis_url, "--concurrency", "2", "--prefetch", "0",
                              handler="support.audio_handlers:separate", queues="audio")
        try:
            done = c.get(f"/v1/jobs/{urgent}/wait", params={"timeout": 60}).json()
            assert (done["state"], done["result"]["stems"]) == (
                "done", ["vocals", "drums", "bass", "other"])
            failed = c.get(f"/v1/jobs/{bad}/wait", params={"timeout": 60}).json()
            outcomes = [c.get(f"/v1/jobs/{j}/wait", params={"timeout": 60}).json()
                        for j in (*normal, low)]
            watcher.join(30)
            workers = c.get("/v1/workers").json()
        finally:
            code, out = stop(worker)
        assert code == 0, out

    # Priorities: 10 first, 1 last (two slots: the 10 and the first 5 start together).
    started = entries(redis_url, "audio:started")
    assert urgent in started[:2], started
    assert started[-1] == low, started
    # Progress, then the end, on the stream.
    kinds = [e for e, _ in events]
    assert (kinds[0], kinds[-1]) == ("state", "end"), kinds
    fractions = [d["progress"] for e, d in events if e == "progress"]
    assert fractions, events
    assert fractions == sorted(fractions), events
    assert fractions[-1] <= 1.0, events
    assert events[-1][1]["result"]["file"] == "urgent.wav"
    # Fail fast: one try, the error named, the job in the failed store.
    assert (failed["state"], failed["tries"]) == ("failed", 1), failed
    assert "not an audio file" in failed["error"]
    assert all(o["state"] == "done" for o in outcomes), outcomes
    # Two at most at once on the one worker, and both slots were used.
    running = [int(x) for x in entries(redis_url, "audio:concurrency")]
    assert max(running) == 2, running
    assert [w["queues"] for w in workers["workers"]] == [["audio"]]
