"""What every route needs, built once per app: Redis, the producer, auth, limits, metrics."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from queueworker.api.auth import AuthError, Principal, Verifier
from queueworker.api.metrics import ApiMetrics
from queueworker.api.ratelimit import RateLimiter
from queueworker.api.settings import ApiSettings
from queueworker.common.log import log_event
from queueworker.worker.connection import async_client
from queueworker.worker.producer import AsyncProducer

log = logging.getLogger("queueworker.api")
bearer = HTTPBearer(auto_error=False, bearerFormat="JWT",
                    description="a JWT (HS256 or RS256) with sub, exp and scope claims")


@dataclass
class Context:
    settings: ApiSettings
    redis: aioredis.Redis
    producer: AsyncProducer
    verifier: Verifier
    limiter: RateLimiter
    metrics: ApiMetrics

    @classmethod
    def build(cls, settings: ApiSettings) -> Context:
        # worker/connection.py: the one client factory (redis://, rediss://, unix://,
        # redis+sentinel://), so the API reaches Redis the way the workers do.
        client = async_client(settings.redis_url, decode_responses=True,
                              socket_connect_timeout=5, health_check_interval=30)
        return cls(settings=settings, redis=client,
                   producer=AsyncProducer(client, settings.prefix, settings.max_payload_bytes),
                   verifier=Verifier(settings),
                   limiter=RateLimiter(client, settings.rate_limit, settings.prefix),
                   metrics=ApiMetrics())


def context(request: Request) -> Context:
    ctx: Context = request.app.state.qw
    return ctx


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: a valid token with ``scope`` (or admin), within the user's rate limit."""

    async def check(request: Request,
                    creds: HTTPAuthorizationCredentials | None = Security(bearer)  # noqa: B008
                    ) -> Principal:
        ctx = context(request)
        try:
            who = ctx.verifier.verify(creds.credentials if creds else None)
        except AuthError as exc:
            ctx.metrics.auth_failures.labels(exc.reason).inc()
            log_event(log, "auth_failed", reason=exc.reason, path=request.url.path,
                      client=request.client.host if request.client else "")
            raise HTTPException(401, str(exc),
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                                ) from None
        if not who.allows(scope):
            raise HTTPException(403, f"this token lacks the {scope!r} scope")
        allowed, wait, _ = await ctx.limiter.take(who.user)
        if not allowed:
            ctx.metrics.rate_limited.inc()
            log_event(log, "rate_limited", user=who.user, path=request.url.path, retry_in=wait)
            limit = ctx.settings.rate_limit
            assert limit is not None  # take() allows everything without a limit
            raise HTTPException(
                429, f"rate limit of {limit.requests} requests per {limit.seconds:g} s "
                     f"reached for user {who.user!r}; retry in {wait} s",
                headers={"Retry-After": str(max(1, wait))})
        return who

    return check
