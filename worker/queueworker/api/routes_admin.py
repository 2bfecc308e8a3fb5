"""Admin: the failed-jobs store (list, show, retry, forget); pause / resume a queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from queueworker.api.auth import SCOPE_ADMIN, Principal
from queueworker.api.context import context, require
from queueworker.api.models import QUEUE_FORBIDDEN, Count, FailedJobs, JobStatus, Paused, none_of
from queueworker.api.routes_jobs import JobId, QueueName
from queueworker.api.store import AsyncFailedStore, set_paused

router = APIRouter(tags=["admin"])
Admin = Depends(require(SCOPE_ADMIN))


def _store(request: Request) -> AsyncFailedStore:
    ctx = context(request)
    return AsyncFailedStore(ctx.redis, ctx.settings.prefix)


@router.get("/v1/failed", response_model=FailedJobs, summary="failed jobs, newest first")
async def failed_list(
        request: Request,
        queue: Annotated[str | None, Query(min_length=1, max_length=200, json_schema_extra={
            "not": {"pattern": QUEUE_FORBIDDEN}}), none_of(QUEUE_FORBIDDEN, "queue name")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        _: Principal = Admin) -> FailedJobs:
    return FailedJobs(failed=await _store(request).list(queue, limit, offset))


@router.get("/v1/failed/{job_id}", response_model=JobStatus,
            summary="one failed job with its error and traceback")
async def failed_show(job_id: JobId, request: Request, _: Principal = Admin) -> JobStatus:
    info = await _store(request).show(job_id)
    if info is None:
        raise HTTPException(404, f"no failed job {job_id!r}")
    info.pop("payload", None)
    return JobStatus(**info)


@router.post("/v1/failed/{job_id}/retry", response_model=Count,
             summary="put a failed job back on its queue")
async def failed_retry(job_id: JobId, request: Request, _: Principal = Admin) -> Count:
    if not await _store(request).retry(job_id):
        raise HTTPException(404, f"no failed job {job_id!r} (retried or forgotten already?)")
    return Count(count=1)


@router.delete("/v1/failed/{job_id}", response_model=Count, summary="forget a failed job")
async def failed_forget(job_id: JobId, request: Request, _: Principal = Admin) -> Count:
    if not await _store(request).forget(job_id):
        raise HTTPException(404, f"no failed job {job_id!r}")
    return Count(count=1)


@router.post("/v1/queues/{queue}/pause", response_model=Paused,
             summary="workers stop taking jobs from the queue (running ones finish)")
async def pause(queue: QueueName, request: Request, _: Principal = Admin) -> Paused:
    ctx = context(request)
    await set_paused(ctx.redis, queue, ctx.settings.prefix, True)
    return Paused(queue=queue, paused=True)


@router.post("/v1/queues/{queue}/resume", response_model=Paused,
             summary="workers take jobs from the queue again")
async def resume(queue: QueueName, request: Request, _: Principal = Admin) -> Paused:
    ctx = context(request)
    await set_paused(ctx.redis, queue, ctx.settings.prefix, False)
    return Paused(queue=queue, paused=False)
