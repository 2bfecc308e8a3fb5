"""Per-user rate limits (token bucket in Redis), request size limits, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from queueworker.api.app import create_app
from queueworker.api.metrics import METRIC_NAMES
from queueworker.api.settings import ApiSettingsError, RateLimit

from support.api_client import Token, bearer, settings_for


async def test_ten_requests_a_minute_per_user(redis_url: str, token: Token) -> None:
    app = create_app(settings_for(redis_url, rate_limit=RateLimit.parse("10/minute")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as c:
        alice, bob = bearer(token("alice")), bearer(token("bob"))
        codes = [(await c.get("/v1/workers", headers=alice)).status_code for _ in range(10)]
        assert codes == [200] * 10
        r = await c.get("/v1/workers", headers=alice)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 6  # one token refills in 6 s
        assert "10 requests per 60 s" in r.json()["detail"]
        assert (await c.get("/v1/workers", headers=bob)).status_code == 200
        assert "queueworker_api_rate_limited_total 1.0" in (await c.get("/metrics")).text
    await app.state.qw.redis.aclose()


def test_rate_limit_text() -> None:
    assert RateLimit.parse("10/60") == RateLimit(10, 60.0)
    assert RateLimit.parse("5/s") == RateLimit(5, 1.0)
    assert RateLimit.parse("0") is None
    with pytest.raises(ApiSettingsError, match="bad rate limit 'ten'"):
        RateLimit.parse("ten")


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(redis_url, max_body_bytes=2048, max_payload_bytes=1024))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as c:
        yield c
    await app.state.qw.redis.aclose()


async def test_a_body_over_the_limit_is_413(small: httpx.AsyncClient, token: Token) -> None:
    h = bearer(token())
    r = await small.post("/v1/queues/q/jobs", headers=h, json={"payload": "x" * 5000})
    assert r.status_code == 413
    assert "over the limit of 2048 bytes" in r.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"payload": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    r = await small.post("/v1/queues/q/jobs", headers={**h, "content-type": "application/json"},
                         content=chunks())
    assert r.status_code == 413


async def test_a_payload_over_its_limit_is_422_naming_it(small: httpx.AsyncClient,
                                                         token: Token) -> None:
    r = await small.post("/v1/queues/q/jobs", headers=bearer(token()),
                         json={"payload": "x" * 1500})
    assert r.status_code == 422
    assert "over the limit of 1024 bytes" in r.json()["detail"]


async def test_metrics_name_every_route_by_its_template(client: httpx.AsyncClient,
                                                        token: Token) -> None:
    await client.get("/v1/jobs/1-x", headers=bearer(token()))
    await client.get("/no/such/path")
    text = (await client.get("/metrics")).text
    assert ('queueworker_api_requests_total{method="GET",route="/v1/jobs/{job_id}",'
            'status="404"} 1.0') in text
    assert 'route="unmatched",status="404"' in text
    for name in METRIC_NAMES:
        assert f"# TYPE {name}" in text
