"""Queues and workers: what is waiting, and who is working on it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from queueworker.api.auth import SCOPE_READ, Principal
from queueworker.api.context import context, require
from queueworker.api.models import Queues, QueueStatus, Workers
from queueworker.api.routes_jobs import QueueName
from queueworker.api.store import find_queues, queue_status, worker_status
from queueworker.worker.heartbeat import aread_heartbeats

router = APIRouter(tags=["queues"])


@router.get("/v1/queues", response_model=Queues, summary="every queue's depth")
async def queues(request: Request,
                 _: Principal = Depends(require(SCOPE_READ))) -> Queues:  # noqa: B008
    ctx = context(request)
    names = ctx.settings.queues or await find_queues(ctx.redis, ctx.settings.prefix)
    return Queues(queues=[await queue_status(ctx.redis, q, ctx.settings.prefix) for q in names])


@router.get("/v1/queues/{queue}", response_model=QueueStatus, summary="one queue's depth")
async def queue(queue: QueueName, request: Request,
                _: Principal = Depends(require(SCOPE_READ))) -> QueueStatus:  # noqa: B008
    ctx = context(request)
    return await queue_status(ctx.redis, queue, ctx.settings.prefix)


@router.get("/v1/workers", response_model=Workers, summary="live workers (heartbeats)")
async def workers(request: Request,
                  _: Principal = Depends(require(SCOPE_READ))) -> Workers:  # noqa: B008
    ctx = context(request)
    beats = await aread_heartbeats(ctx.redis, ctx.settings.prefix)
    busy = sum(1 for b in beats if b.busy)
    return Workers(workers=[worker_status(b) for b in beats], busy=busy, idle=len(beats) - busy)
