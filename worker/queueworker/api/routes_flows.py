"""Batches, chains and schedules (worker/flows.py, worker/schedules.py): read with
``jobs:read``; cancel a batch, pause / resume / trigger a schedule with ``admin``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel

from queueworker.api.auth import SCOPE_ADMIN, SCOPE_READ, Principal
from queueworker.api.context import context, require
from queueworker.api.models import Count
from queueworker.worker import keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.flows import (
    BATCH_CANCEL,
    batch_key,
    batch_status,
    batches_key,
    chain_key,
    chain_status,
)
from queueworker.worker.schedule_store import SET_PAUSED, describe
from queueworker.worker.schedules import Schedule, ScheduleError, schedule_key, schedules_index

router = APIRouter(tags=["flows"])
Read = Depends(require(SCOPE_READ))
Admin = Depends(require(SCOPE_ADMIN))
FlowId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}(@[A-Za-z0-9_.:~-]{1,200})?$",
                            description="as flows.py returns it")]
ScheduleName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]


class BatchStatus(BaseModel):
    id: str
    name: str
    state: str
    total: int
    pending: int
    processed: int
    failed: int
    skipped: int
    progress: int
    cancelled: bool
    allow_failures: bool
    failed_jobs: list[str]
    created_at: float
    finished_at: float | None


class Batches(BaseModel):
    batches: list[BatchStatus]


class ChainStatus(BaseModel):
    id: str
    state: str
    steps: int
    position: int
    queues: list[str]
    current_job: str | None
    failed_job: str | None
    with_result: bool
    has_catch: bool
    created_at: float
    finished_at: float | None


class ScheduleStatus(BaseModel):
    name: str
    queue: str
    paused: bool
    when: str
    missed: str | None = None
    next_due: float | None
    last_due: float | None
    last_job: str | None
    ticks: int
    skipped: int
    overlapped: int


class Schedules(BaseModel):
    schedules: list[ScheduleStatus]


class Triggered(BaseModel):
    id: str
    queue: str


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


async def _hash(request: Request, key: str) -> dict[str, str]:
    raw = await context(request).redis.hgetall(key)  # type: ignore[misc]
    return {_text(k): _text(v) for k, v in raw.items()}


async def _batch(request: Request, batch_id: str) -> BatchStatus | None:
    ctx = context(request)
    key = batch_key(batch_id, ctx.settings.prefix)
    h = await _hash(request, key)
    if not h:
        return None
    failed = [_text(x) for x in await ctx.redis.smembers(key + ":failed")]  # type: ignore[misc]
    return BatchStatus(**batch_status(batch_id, h, failed))


@router.get("/v1/batches", response_model=Batches, summary="batches, newest first")
async def batches(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  _: Principal = Read) -> Batches:
    ctx = context(request)
    ids = await ctx.redis.zrevrange(batches_key(ctx.settings.prefix), 0, limit - 1)
    found = [await _batch(request, _text(i)) for i in ids]
    return Batches(batches=[b for b in found if b is not None])


@router.get("/v1/batches/{batch_id}", response_model=BatchStatus,
            summary="one batch: total, pending, processed, failed, progress")
async def batch(batch_id: FlowId, request: Request, _: Principal = Read) -> BatchStatus:
    found = await _batch(request, batch_id)
    if found is None:
        raise HTTPException(404, f"no batch {batch_id!r}")
    return found


@router.post("/v1/batches/{batch_id}/cancel", response_model=Count,
             summary="cancel a batch: pending jobs skipped (count), running ones finish")
async def batch_cancel(batch_id: FlowId, request: Request, _: Principal = Admin) -> Count:
    ctx = context(request)
    home, cluster = keys.queue_of_id(batch_id), is_cluster(ctx.redis)
    if cluster and home is None:  # an id of the old form: no such batch on a cluster
        raise HTTPException(404, f"no running batch {batch_id!r} (finished or unknown)")
    route = keys.script_keys(home or "", cluster, ctx.settings.prefix)
    n = int(await ctx.redis.register_script(BATCH_CANCEL)(keys=route,
                                                          args=[ctx.settings.prefix, batch_id]))
    if n < 0:
        raise HTTPException(404, f"no running batch {batch_id!r} (finished or unknown)")
    return Count(count=n)


@router.get("/v1/chains/{chain_id}", response_model=ChainStatus, summary="one chain's state")
async def chain(chain_id: FlowId, request: Request, _: Principal = Read) -> ChainStatus:
    h = await _hash(request, chain_key(chain_id, context(request).settings.prefix))
    if not h:
        raise HTTPException(404, f"no chain {chain_id!r}")
    return ChainStatus(**chain_status(chain_id, h))


async def _schedule(request: Request, name: str) -> tuple[dict[str, str], Schedule]:
    h = await _hash(request, schedule_key(name, context(request).settings.prefix))
    if not h:
        raise HTTPException(404, f"no schedule {name!r}")
    try:
        return h, Schedule.from_json(h.get("spec", ""))
    except ScheduleError as exc:
        raise HTTPException(409, f"schedule {name!r} cannot be read: {exc}") from None


@router.get("/v1/schedules", response_model=Schedules, summary="every registered schedule")
async def schedules(request: Request, _: Principal = Read) -> Schedules:
    ctx = context(request)
    names = await ctx.redis.zrange(schedules_index(ctx.settings.prefix), 0, -1)
    rows = [await _hash(request, schedule_key(_text(n), ctx.settings.prefix)) for n in names]
    return Schedules(schedules=[ScheduleStatus(**describe(h)) for h in rows if h])


async def _set_paused(request: Request, name: str, paused: bool) -> ScheduleStatus:
    ctx = context(request)
    _h, s = await _schedule(request, name)
    sec, usec = await ctx.redis.time()
    nxt = s.next_after(int(sec) * 1000 + int(usec) // 1000)
    await ctx.redis.register_script(SET_PAUSED)(
        args=[ctx.settings.prefix, name, "1" if paused else "", nxt])
    return ScheduleStatus(**describe((await _schedule(request, name))[0]))


@router.post("/v1/schedules/{name}/pause", response_model=ScheduleStatus,
             summary="pause a schedule: no ticks until resumed")
async def schedule_pause(name: ScheduleName, request: Request,
                         _: Principal = Admin) -> ScheduleStatus:
    return await _set_paused(request, name, True)


@router.post("/v1/schedules/{name}/resume", response_model=ScheduleStatus,
             summary="resume a schedule, from its next tick after now")
async def schedule_resume(name: ScheduleName, request: Request,
                          _: Principal = Admin) -> ScheduleStatus:
    return await _set_paused(request, name, False)


@router.post("/v1/schedules/{name}/trigger", response_model=Triggered,
             summary="enqueue the schedule's job now (its next tick is unchanged)")
async def schedule_trigger(name: ScheduleName, request: Request,
                           _: Principal = Admin) -> Triggered:
    ctx = context(request)
    _h, s = await _schedule(request, name)
    job_id = await ctx.producer.enqueue(s.queue, s.payload, **dict(s.options))
    await ctx.redis.hincrby(schedule_key(name, ctx.settings.prefix), "triggered", 1)  # type: ignore[misc]
    return Triggered(id=job_id, queue=s.queue)
