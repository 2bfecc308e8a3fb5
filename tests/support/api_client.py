"""Tokens and settings for the HTTP API tests (tests/api)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt

from queueworker.api.settings import ApiSettings, RateLimit

SECRET = b"test-secret-0123456789abcdef-0123456789"  # >= 32 bytes, as settings require

Token = Callable[..., str]


def make_token(sub: str = "alice", scope: str = "jobs:read jobs:write", key: Any = SECRET,
               alg: str = "HS256", ttl: float = 300, **claims: Any) -> str:
    body = {"sub": sub, "scope": scope, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(body, key, algorithm=alg)


def settings_for(redis_url: str, **over: Any) -> ApiSettings:
    s = ApiSettings(redis_url=redis_url, hs256_secrets=[SECRET],
                    rate_limit=RateLimit(1000, 60.0))
    for k, v in over.items():
        setattr(s, k, v)
    s.validate()
    return s


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}
