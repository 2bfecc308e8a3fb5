"""Fixtures of the HTTP API tests: an app on the session's real redis-server, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from queueworker.api.app import create_app

from support.api_client import Token, make_token, settings_for


@pytest.fixture
def token() -> Token:
    return make_token


@pytest.fixture
def app(redis_url: str) -> FastAPI:
    return create_app(settings_for(redis_url))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
    await app.state.qw.redis.aclose()
