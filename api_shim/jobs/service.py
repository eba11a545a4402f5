"""Reading jobs and their per-mailbox results, waiting for them, and re-running failed mailboxes."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api_shim.errors import ApiError
from downsync.db import get_engine
from downsync.jobs import reopen_failed
from downsync.models import PENDING, Job, JobResult

JOBS_PATH = "/api/salesforce/scheduler/jobs"


def job_location(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


def get_job(session: Session, tenant_id: int, job_id: str) -> Job:
    job = session.get(Job, job_id)
    # Another tenant's job is indistinguishable from no job at all.
    if job is None or job.tenant_id != tenant_id:
        raise ApiError(404, "ErrorJobNotFound", f"no job {job_id}")
    return job


def results(session: Session, job_id: str) -> list[JobResult]:
    return list(session.exec(select(JobResult).where(JobResult.job_id == job_id).order_by(col(JobResult.position))))


@dataclass(frozen=True)
class Snapshot:
    job: Job
    results: list[JobResult]

    @property
    def final(self) -> bool:
        return all(r.error_code != PENDING for r in self.results)


def snapshot(job_id: str) -> Snapshot | None:
    with Session(get_engine(), expire_on_commit=False) as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        return Snapshot(job, results(session, job_id))


def job_exists(job_id: str) -> bool:
    with Session(get_engine()) as session:
        return session.get(Job, job_id) is not None


async def wait_for(job_id: str, seconds: float) -> Snapshot | None:
    """Poll the store until every mailbox of the job has a final code, or the time is up."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        current = await run_in_threadpool(snapshot, job_id)
        remaining = deadline - time.monotonic()
        if current is None or current.final or remaining <= 0:
            return current
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 1.5, 0.25)


def encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), job_id
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            422,
            "ErrorInvalidRequest",
            "cursor is not valid",
            [{"field": "cursor", "problem": "is not a cursor this service returned"}],
        ) from None


def list_jobs(
    session: Session, tenant_id: int, state: str | None, since: datetime | None, cursor: str | None, limit: int
) -> tuple[list[Job], str | None]:
    query = select(Job).where(Job.tenant_id == tenant_id)
    if state:
        query = query.where(Job.state == state)
    if since:
        query = query.where(Job.created_at >= since)
    if cursor:
        stamp, job_id = decode_cursor(cursor)
        query = query.where((Job.created_at < stamp) | ((Job.created_at == stamp) & (col(Job.id) < job_id)))
    page = list(session.exec(query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)))
    more = len(page) > limit
    page = page[:limit]
    return page, (encode_cursor(page[-1]) if more and page else None)


def retry(session: Session, tenant_id: int, job_id: str) -> list[int]:
    return reopen_failed(session, get_job(session, tenant_id, job_id))
