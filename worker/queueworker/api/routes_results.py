"""Results: a job's outcome now, waiting for it (long poll), and its events (SSE).

Waiting and the event stream are woken by the worker's per-job notifications
(``results.py``: the done token, the progress channel), not by polling Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from queueworker.api.auth import SCOPE_READ, Principal
from queueworker.api.context import Context, context, require
from queueworker.api.models import JobOutcome
from queueworker.api.routes_jobs import JobId
from queueworker.worker.crypto import CryptoError
from queueworker.worker.results import (
    JobFailedError,
    JobNotFoundError,
    Outcome,
    WaitTimeoutError,
)

router = APIRouter(tags=["results"])
Reader = Depends(require(SCOPE_READ))
DEFAULT_WAIT = 30.0


def outcome_model(o: Outcome) -> JobOutcome:
    return JobOutcome(**o.info(), finished=o.finished)


async def _outcome(ctx: Context, job_id: str) -> Outcome:
    o = await ctx.producer.outcome(job_id)
    if o is None:
        raise HTTPException(404, f"no job {job_id!r} (never enqueued, or finished longer ago "
                                 "than its result TTL)")
    return o


@router.get("/v1/jobs/{job_id}/result", response_model=JobOutcome,
            summary="the job's result (when done), error (when failed) or state now")
async def result(job_id: JobId, request: Request, _: Principal = Reader) -> JobOutcome:
    return outcome_model(await _outcome(context(request), job_id))


@router.get("/v1/jobs/{job_id}/wait", response_model=JobOutcome,
            summary="wait until the job finishes or the timeout passes (finished: false)")
async def wait(job_id: JobId, request: Request,
               seconds: Annotated[float, Query(alias="timeout", gt=0, le=86400, description=(
                   "seconds to wait at most (the server's --max-wait caps it)"))] = DEFAULT_WAIT,
               _: Principal = Reader) -> JobOutcome:
    ctx = context(request)
    ctx.metrics.open_streams.inc()
    waiting = asyncio.ensure_future(ctx.producer.wait(job_id, min(seconds,
                                                                  ctx.settings.max_wait)))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():  # the client went away: stop blocking a Redis connection
            raise HTTPException(499, "client closed the request")
        waiting.result()
    except (JobFailedError, WaitTimeoutError, CryptoError):
        pass  # the outcome below says which (CryptoError: finished, result sealed)
    except JobNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    finally:
        for task in (waiting, gone):
            task.cancel()
        ctx.metrics.open_streams.dec()
    return outcome_model(await _outcome(ctx, job_id))


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (a GET has no body left to read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/v1/jobs/{job_id}/events", summary="server-sent events: state, progress, end",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "`event: state` (now), `event: progress` "
                                            "(each report), then `event: end` (the outcome)"}})
async def events(job_id: JobId, request: Request, _: Principal = Reader) -> StreamingResponse:
    ctx = context(request)
    first = await _outcome(ctx, job_id)  # a 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        ctx.metrics.open_streams.inc()
        try:
            yield sse("state", outcome_model(first).model_dump())
            if first.finished:
                yield sse("end", outcome_model(first).model_dump())
                return
            async for report in ctx.producer.follow(job_id, ctx.settings.stream_max_seconds):
                if report.get("state") == "running" and "result" not in report:
                    yield sse("progress", report)
                else:
                    yield sse("end", {**report, "finished": report.get("state") in (
                        "done", "failed")})
        except JobNotFoundError as exc:
            yield sse("error", {"detail": str(exc)})
        finally:
            ctx.metrics.open_streams.dec()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
