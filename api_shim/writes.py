"""What every write endpoint does after its service accepted the call: commit, enqueue, wait, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api_shim.jobs.service import job_location, wait_for
from downsync import observability
from downsync.jobs import Accepted
from downsync.settings import Settings
from worker.enqueue import enqueue_placements

WaitQuery = Annotated[
    float | None,
    Query(ge=0, le=60, description="Seconds to wait for every mailbox to finish (default 10, 0 answers at once)."),
]


def body_correlation(request: Request, from_body: str | None) -> str:
    """The query string's id wins, then the body's, then the generated one."""
    if from_body and "salesforceCorrelationId" not in request.query_params:
        request.state.correlation_id = from_body
        observability.correlation_id.set(from_body)
    return str(request.state.correlation_id)


async def finish(
    session: Session, accepted: Accepted, wait: float | None, settings: Settings, single: bool = False
) -> JSONResponse:
    """Commit the accepted write, enqueue it, and answer with its results once final or when the wait is over."""
    await run_in_threadpool(session.commit)
    await run_in_threadpool(enqueue_placements, accepted.placement_ids)
    return await answer(accepted.job.id, wait, settings, single)


async def answer(job_id: str, wait: float | None, settings: Settings, single: bool = False) -> JSONResponse:
    """The job's per-mailbox codes (one object for a meeting's organizer), 200 when all are final, else 202."""
    seconds = settings.postback_wait_seconds if wait is None else min(wait, settings.postback_wait_max_seconds)
    snap = await wait_for(job_id, seconds)
    results = [{"email": r.email, "errorCode": r.error_code} for r in snap.results]
    headers = {"Location": job_location(job_id), "X-Job-Id": job_id}
    return JSONResponse(results[0] if single else results, status_code=200 if snap.final else 202, headers=headers)
