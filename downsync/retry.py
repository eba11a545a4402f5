"""``downsync retry``: put failed mailboxes back to work and follow them until they finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from downsync.db import get_engine, session_scope
from downsync.jobs import failed_jobs_since, reopen_failed
from downsync.models import NO_ERROR, PENDING, Job, JobResult
from downsync.tenants import TenantError, tenant_by_name


class RetryError(ValueError):
    pass


def _since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RetryError(f"--since {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reopen(job_id: str | None, since: str | None, tenant_name: str | None) -> tuple[list[int], list[int]]:
    """Reopen the failed results of one job or of every failed job since a time; enqueue their placements."""
    from downsync.queue import default_queue

    with session_scope() as session:
        if job_id:
            job = session.get(Job, job_id)
            if job is None:
                raise RetryError(f"no job {job_id}")
            jobs = [job]
        else:
            tenant_id = None
            if tenant_name:
                try:
                    tenant_id = tenant_by_name(session, tenant_name).id
                except TenantError as exc:
                    raise RetryError(str(exc)) from exc
            jobs = failed_jobs_since(session, tenant_id, _since(since or ""))
        job_ids = [j.id for j in jobs]
        to_run = session.exec(
            select(JobResult.id).where(
                col(JobResult.job_id).in_(job_ids), JobResult.error_code != NO_ERROR, JobResult.error_code != PENDING
            )
        ).all()
        placements: list[int] = []
        for job in jobs:
            placements += reopen_failed(session, job)
    default_queue().enqueue(sorted(set(placements)))
    return [i for i in to_run if i is not None], sorted(set(placements))


def wait_for_results(result_ids: list[int], timeout: float, advance: Callable[[int], None]) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    done: set[int] = set()
    codes: dict[int, str] = {}
    while True:
        with Session(get_engine()) as session:
            rows = session.exec(select(JobResult.id, JobResult.error_code).where(col(JobResult.id).in_(result_ids)))
            codes = {row_id: code for row_id, code in rows if row_id is not None}
        finished = {i for i, code in codes.items() if code != PENDING}
        advance(len(finished - done))
        done |= finished
        if len(done) == len(result_ids) or time.monotonic() > deadline:
            return codes
        time.sleep(0.5)
