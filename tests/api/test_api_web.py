"""The web view's server side (api/web/): its static files and its snapshot stream, with a
real redis-server and a real uvicorn server (the stream streams)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.api_client import bearer, make_token
from support.api_thread import serving, web_app


@pytest.fixture
def base(redis_url: str) -> Iterator[str]:
    with serving(web_app(redis_url)) as url:
        yield url


def first_event(url: str, token: str | None) -> tuple[int, str, Any]:
    """(status, first event's name, its data) of /ui/stream."""
    headers = bearer(token) if token else {}
    with httpx.stream("GET", f"{url}/ui/stream", headers=headers, timeout=20) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, "", r.json()
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                return 200, event, json.loads(line[len("data: "):])
    raise AssertionError("the stream ended before its first event")


def test_static_files_are_served_with_a_strict_policy(base: str) -> None:
    page = httpx.get(f"{base}/ui/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert ("default-src 'self'" in csp, "frame-ancestors 'none'" in csp) == (True, True)
    js = httpx.get(f"{base}/ui/app.js", timeout=10)
    assert js.headers["content-type"].startswith("text/javascript")
    assert ("/ui/stream" in js.text, "innerHTML" in js.text) == (True, False)
    assert httpx.get(f"{base}/ui/app.css", timeout=10).status_code == 200
    assert httpx.get(f"{base}/ui", timeout=10, follow_redirects=False).status_code == 308
    missing = httpx.get(f"{base}/ui/..%2Fapp.py", timeout=10)
    assert missing.status_code == 404
    assert "/ui/stream" not in httpx.get(f"{base}/openapi.json", timeout=10).text


def test_stream_needs_a_token_and_hides_failed_jobs_from_readers(base: str,
                                                                 redis_url: str) -> None:
    producer = Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)
    producer.enqueue("audio", {"f": 1}, priority=9)
    r = redis.Redis.from_url(redis_url)
    r.zadd(keys.legacy_failed("qw"), {"1700000000000-aa": 1.0})  # the old layout's store
    r.hset(keys.job("1700000000000-aa", "qw"), mapping={"queue": "audio", "error": "Boom"})

    status, _, body = first_event(base, None)
    assert (status, "bearer token" in body["detail"]) == (401, True)
    status, _, body = first_event(base, make_token(scope="jobs:write"))
    assert status == 403

    status, event, snap = first_event(base, make_token(sub="reader", scope="jobs:read"))
    assert (status, event, snap["user"], snap["admin"], snap["failed"]) == (
        200, "snapshot", "reader", False, None)
    (audio,) = snap["queues"]
    assert (audio["queue"], audio["waiting"], audio["by_priority"]["9"]) == ("audio", 1, 1)
    assert (snap["workers"], snap["batches"], snap["schedules"]) == ([], [], [])

    _, _, snap = first_event(base, make_token(sub="ops", scope="admin"))
    assert snap["admin"] is True
    assert [(f["id"], f["error"]) for f in snap["failed"]] == [("1700000000000-aa", "Boom")]


def test_stream_sends_a_new_snapshot_as_things_change(base: str, redis_url: str) -> None:
    producer = Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)
    seen: list[int] = []
    with httpx.stream("GET", f"{base}/ui/stream", timeout=20,
                      headers=bearer(make_token(scope="jobs:read"))) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            queues = json.loads(line[len("data: "):])["queues"]
            seen.append(sum(q["waiting"] for q in queues))
            if len(seen) == 1:
                producer.enqueue("q", {})
            if seen[-1] == 1:
                break
    assert (seen[0], seen[-1]) == (0, 1)
