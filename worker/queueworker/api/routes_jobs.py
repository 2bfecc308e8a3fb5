"""Jobs: enqueue, status (and, with the worker's results, result / wait / events)."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from queueworker.api.auth import SCOPE_READ, SCOPE_WRITE, Principal
from queueworker.api.context import context, require
from queueworker.api.models import (
    ID_FORBIDDEN,
    QUEUE_FORBIDDEN,
    Enqueued,
    EnqueueRequest,
    JobStatus,
    none_of,
)
from queueworker.worker.job import PayloadError
from queueworker.worker.producer import make_options

router = APIRouter(tags=["jobs"])

QueueName = Annotated[str, Path(min_length=1, max_length=200, description="queue name",
                                 json_schema_extra={"not": {"pattern": QUEUE_FORBIDDEN}}),
                      none_of(QUEUE_FORBIDDEN, "queue name")]
JobId = Annotated[str, Path(min_length=1, max_length=200, description="job id (as enqueue "
                            "returned it)", json_schema_extra={"not": {"pattern": ID_FORBIDDEN}}),
                  none_of(ID_FORBIDDEN, "job id")]
# Fields of a job hash not shown by the status endpoint: large, or only for the failed store.
HIDDEN = ("payload", "traceback", "result")
PRIORITIES = "priority" in inspect.signature(make_options).parameters


def options_of(body: EnqueueRequest) -> dict[str, Any]:
    opts = body.model_dump(exclude={"payload"}, exclude_none=True)
    if "priority" in opts and not PRIORITIES:
        raise HTTPException(422, "priority is not supported by this version of the worker")
    return opts


@router.post("/v1/queues/{queue}/jobs", status_code=201, response_model=Enqueued,
             summary="enqueue a job")
async def enqueue(queue: QueueName, body: EnqueueRequest, request: Request,
                  who: Principal = Depends(require(SCOPE_WRITE))) -> Enqueued:  # noqa: B008
    if not who.may_use(queue):
        raise HTTPException(403, f"this token may not enqueue to queue {queue!r}")
    ctx = context(request)
    try:
        res = await ctx.producer.enqueue_result(queue, body.payload, **options_of(body))
    except (PayloadError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    ctx.metrics.enqueued.labels(queue).inc()
    return Enqueued(id=res.id, queue=queue, created=res.created)


@router.get("/v1/jobs/{job_id}", response_model=JobStatus, summary="a job's status")
async def job_status(job_id: JobId, request: Request,
                     _: Principal = Depends(require(SCOPE_READ))) -> JobStatus:  # noqa: B008
    info = await context(request).producer.job(job_id)
    if info is None:
        raise HTTPException(404, f"no job {job_id!r} (never enqueued, or finished and expired)")
    return JobStatus(**{k: v for k, v in info.items() if k not in HIDDEN})
