"""The web view: queues, workers and their jobs, batches, schedules and failed jobs on one
page, in the spirit of Horizon, Flower and bull-board.

Why it is built this way:

- The page is three static files (``static/``: HTML, vanilla JS, CSS); no build step and no
  CDN, so it works where nothing outside is reachable, and ships inside the package. It is
  served without auth (it holds no data) under a Content-Security-Policy that allows only
  this origin: no inline script, no foreign fetch.
- Its data comes from ``/ui/stream``, server-sent events behind the API's bearer auth
  (``jobs:read``): a ``snapshot`` event every ``INTERVAL`` seconds, assembled by the same
  route functions as ``/v1/queues``, ``/v1/workers``, ``/v1/batches``, ``/v1/schedules`` and,
  for admin tokens only, ``/v1/failed``. A stream counts as one request for the per-user rate
  limit (default 10 a minute) however long it stays open, where polling five endpoints every
  few seconds would not fit in it. It closes after ``LIFETIME`` seconds, so a token that
  expired or was revoked stops being served; the page reconnects.
- Buttons call the existing admin endpoints (retry, forget, pause, trigger, cancel); the page
  hides them for non-admin tokens and the API refuses them (403) all the same.
- The page gets the token once (pasted), keeps it in ``sessionStorage`` (gone with the tab)
  and sends it as ``Authorization: Bearer``; it reads the stream with ``fetch``, since an
  ``EventSource`` cannot send that header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from queueworker.api import routes_flows, routes_queues
from queueworker.api.auth import SCOPE_ADMIN, SCOPE_READ, Principal
from queueworker.api.context import context, require
from queueworker.api.routes_results import sse
from queueworker.api.store import AsyncFailedStore

INTERVAL = 2.0
LIFETIME = 300.0
BATCHES = 20
FAILED = 50
FILES = {"": ("index.html", "text/html; charset=utf-8"),
         "app.js": ("app.js", "text/javascript; charset=utf-8"),
         "app.css": ("app.css", "text/css; charset=utf-8")}
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"}

router = APIRouter(include_in_schema=False)
Reader = Depends(require(SCOPE_READ))


def mount(app: FastAPI) -> None:
    """Serve the web view from ``app`` (``queueworker api``)."""
    app.include_router(router)


def _serve(name: str) -> Response:
    file, media = FILES[name]
    body = resources.files(__package__).joinpath("static", file).read_bytes()
    return Response(body, media_type=media, headers=HEADERS)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", 308)


@router.get("/ui/")
async def ui_index() -> Response:
    return _serve("")


async def snapshot(request: Request, who: Principal) -> dict[str, Any]:
    """Everything the page shows, as the read endpoints answer it."""
    admin = who.allows(SCOPE_ADMIN)
    queues = await routes_queues.queues(request, who)
    workers = await routes_queues.workers(request, who)
    batches = await routes_flows.batches(request, BATCHES, who)
    schedules = await routes_flows.schedules(request, who)
    out: dict[str, Any] = {
        "at": time.time(), "user": who.user, "admin": admin,
        "queues": queues.model_dump(mode="json")["queues"],
        "workers": workers.model_dump(mode="json")["workers"],
        "batches": batches.model_dump(mode="json")["batches"],
        "schedules": schedules.model_dump(mode="json")["schedules"],
        "failed": None,
    }
    if admin:
        ctx = context(request)
        failed = await AsyncFailedStore(ctx.redis, ctx.settings.prefix).list(None, FAILED)
        out["failed"] = [f.model_dump(mode="json") for f in failed]
    return out


@router.get("/ui/stream")
async def ui_stream(request: Request, who: Principal = Reader) -> StreamingResponse:
    ctx = context(request)
    first = await snapshot(request, who)  # a Redis error answers 503 before the stream
    lifetime = min(LIFETIME, ctx.settings.stream_max_seconds)

    async def stream() -> AsyncIterator[bytes]:
        ctx.metrics.open_streams.inc()
        try:
            yield sse("snapshot", first)
            end = time.monotonic() + lifetime
            while time.monotonic() < end:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(INTERVAL)
                try:
                    yield sse("snapshot", await snapshot(request, who))
                except (redis.RedisError, OSError) as exc:  # the page reconnects
                    yield sse("error", {"detail": f"{type(exc).__name__}: {exc}"})
                    return
            yield sse("end", {"detail": "stream lifetime reached; reconnect"})
        finally:
            ctx.metrics.open_streams.dec()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/ui/{name}")
async def ui_file(name: str) -> Response:
    """After /ui/stream: routes match in order."""
    if name not in FILES:
        raise HTTPException(404, f"no file {name!r} in the web view")
    return _serve(name)
