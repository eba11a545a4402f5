"""``/api/salesforce/scheduler/jobs``: the results of accepted writes, and re-running failed mailboxes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api_shim.deps import PrincipalDep, QueueDep, SessionDep, SyncPrincipal
from api_shim.fields import UtcTime
from api_shim.jobs import service
from api_shim.jobs.schemas import JobPage, JobView

router = APIRouter(prefix=service.JOBS_PATH, tags=["jobs"])
State = Literal["pending", "succeeded", "partial", "failed"]


@router.get("/{job_id}", response_model=JobView, summary="A job and a result per mailbox")
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobView:
    job = service.get_job(session, principal.tenant_id, job_id)
    return JobView.of(job, service.results(session, job.id))


@router.get("", response_model=JobPage, summary="Jobs, newest first, a page at a time")
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    state: State | None = None,
    since: Annotated[UtcTime | None, Query(description="ISO 8601; only jobs created at or after it")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JobPage:
    jobs, next_cursor = service.list_jobs(session, principal.tenant_id, state, since, cursor, limit)
    return JobPage(jobs=[JobView.of(j, service.results(session, j.id)) for j in jobs], nextCursor=next_cursor)


@router.post(
    "/{job_id}/retry",
    response_model=JobView,
    status_code=202,
    summary="Run again every mailbox of the job whose code is not NoError",
)
def retry_job(job_id: str, session: SessionDep, principal: SyncPrincipal, queue: QueueDep) -> JobView:
    placement_ids = service.retry(session, principal.tenant_id, job_id)
    session.commit()
    queue.enqueue(placement_ids)
    job = service.get_job(session, principal.tenant_id, job_id)
    return JobView.of(job, service.results(session, job.id))
