"""The HTTP API's application: ``create_app(settings)`` for ``queueworker api`` and tests.

Why FastAPI (on Starlette) served by uvicorn: the request and response bodies are
pydantic models already used across the project (pydantic is a core dependency), and
FastAPI turns them into the OpenAPI schema it serves at ``/openapi.json``, so the schema
that schemathesis tests the running server against is the code itself, not a second
document that can drift. Starlette gives plain ASGI middleware (size limit, metrics) and
streaming responses (server-sent events); uvicorn is its well-kept asyncio server. All
three are among the most used packages on PyPI, released often. aiohttp was the other
candidate: it serves no OpenAPI schema of its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from queueworker.api import routes_admin, routes_flows, routes_jobs, routes_queues, routes_results
from queueworker.api.bodylimit import BodyLimit
from queueworker.api.context import Context
from queueworker.api.metrics import MetricsMiddleware
from queueworker.api.models import Health, Problem
from queueworker.api.settings import ApiSettings
from queueworker.api.web import mount as mount_web
from queueworker.common.log import log_event
from queueworker.common.redact import redact
from queueworker.worker.crypto import CryptoError

log = logging.getLogger("queueworker.api")

ERRORS = {
    400: {"model": Problem, "description": "a body or header that cannot be parsed"},
    401: {"model": Problem, "description": "missing or invalid bearer token"},
    403: {"model": Problem, "description": "the token lacks the scope (or the queue)"},
    404: {"model": Problem, "description": "no such job (or failed job, batch, schedule)"},
    413: {"model": Problem, "description": "request body over the size limit"},
    422: {"model": Problem, "description": "invalid request (the detail names what)"},
    429: {"model": Problem, "description": "per-user rate limit reached (see Retry-After)"},
    503: {"model": Problem, "description": "Redis cannot be reached"},
}


async def known_query(request: Request) -> None:
    """A query parameter the route does not take, or one given twice, is an error, not
    silently ignored (``/wait?timout=60`` would otherwise wait the default time)."""
    if not request.query_params:
        return
    app: FastAPI = request.app
    names: dict[tuple[str, str], set[str]] | None = getattr(app.state, "query_names", None)
    if names is None:
        names = {(method.upper(), path): {p["name"] for p in op.get("parameters", ())
                                          if p.get("in") == "query"}
                 for path, ops in app.openapi().get("paths", {}).items()
                 for method, op in ops.items()}
        app.state.query_names = names
    route = getattr(request.scope.get("route"), "path", "")
    allowed = names.get((request.method, route), set())
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise HTTPException(422, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                                 f"this endpoint takes: {takes}")
    repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1})
    if repeated:  # every parameter here is one value: which of several was meant?
        raise HTTPException(422, f"query parameter(s) {', '.join(map(repr, repeated))} given "
                                 "more than once; give each once")


def create_app(settings: ApiSettings) -> FastAPI:
    ctx = Context.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await ctx.redis.aclose()

    app = FastAPI(title="queueworker", version="1", lifespan=lifespan,
                  dependencies=[Depends(known_query)],
                  description="Enqueue jobs, follow them, and administer the queues of "
                              "queueworker's native worker (docs/api.md).",
                  responses=ERRORS)  # type: ignore[arg-type]
    app.state.qw = ctx
    for module in (routes_jobs, routes_results, routes_queues, routes_admin, routes_flows):
        app.include_router(module.router, responses=ERRORS)  # type: ignore[arg-type]
    mount_web(app)  # the web view at /ui/ (api/web/), outside the OpenAPI schema
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        text = redact(str(exc))
        log_event(log, "redis_error", logging.WARNING, path=request.url.path, error=text)
        return JSONResponse({"detail": f"Redis cannot be reached or refused: {text}"}, 503)

    @app.exception_handler(CryptoError)
    async def sealed(request: Request, exc: CryptoError) -> JSONResponse:
        log_event(log, "crypto_error", logging.WARNING, path=request.url.path, error=str(exc))
        return JSONResponse({"detail": f"a sealed field cannot be opened here: {exc} (give "
                                       "this server the keys, QUEUEWORKER_KEYS)"}, 503)

    @app.get("/healthz", response_model=Health, tags=["health"],
             responses={503: {"model": Health}}, summary="200 when Redis answers")
    async def healthz() -> Response:
        try:
            ok = bool(await ctx.redis.ping())
        except (redis.RedisError, OSError):
            ok = False
        body = Health(status="ok" if ok else "redis unreachable", redis=ok)
        return JSONResponse(body.model_dump(), 200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
