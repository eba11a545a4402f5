"""The job view callers poll."""

from __future__ import annotations

from pydantic import BaseModel

from api_shim.fields import format_time
from downsync.models import Job, JobResult


class ResultView(BaseModel):
    email: str
    errorCode: str
    attempts: int
    updatedAt: str
    message: str | None


class JobView(BaseModel):
    jobId: str
    kind: str
    operation: str
    eventId: str
    correlationId: str
    state: str
    createdAt: str
    finishedAt: str | None
    results: list[ResultView]

    @classmethod
    def of(cls, job: Job, results: list[JobResult]) -> JobView:
        return cls(
            jobId=job.id,
            kind=job.kind,
            operation=job.operation,
            eventId=job.event_id,
            correlationId=job.correlation_id,
            state=job.state,
            createdAt=format_time(job.created_at),
            finishedAt=format_time(job.finished_at) if job.finished_at else None,
            results=[
                ResultView(
                    email=r.email,
                    errorCode=r.error_code,
                    attempts=r.attempts,
                    updatedAt=format_time(r.updated_at),
                    message=r.message,
                )
                for r in results
            ],
        )


class JobPage(BaseModel):
    jobs: list[JobView]
    nextCursor: str | None
