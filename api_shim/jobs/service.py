"""Reading jobs and their per-mailbox results, waiting for them, and re-running failed mailboxes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api_shim.errors import ApiError
from downsync.db import get_engine
from downsync.jobs import reopen_failed
from downsync.models import PENDING, Job, JobResult
from downsync.queue import FINAL_CHANNEL
from downsync.settings import get_settings

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
    """The job once every mailbox has a final code, or as it is when the time is up. The worker that closes the job
    announces it (Redis pub/sub), which wakes this at once; a look every second covers a lost announcement, and plain
    polling a Redis that does not answer."""
    deadline = time.monotonic() + seconds
    async with final_announcements(job_id) as announced:
        pause = 0.05
        while True:
            current = await run_in_threadpool(snapshot, job_id)
            remaining = deadline - time.monotonic()
            if current is None or current.final or remaining <= 0:
                return current
            if announced is None:
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 1.5, 0.25)
            else:
                await announced(min(1.0, remaining))


@asynccontextmanager
async def final_announcements(job_id: str) -> AsyncIterator[Callable[[float], Awaitable[None]] | None]:
    """A function that waits (at most a given time) for the job's announcement, or None when Redis cannot be asked."""
    pubsub = None
    try:
        pubsub = _async_redis(get_settings().redis_url).pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{FINAL_CHANNEL}:{job_id}")
    except (RedisError, OSError):
        pubsub = None

    async def announced(timeout: float) -> None:
        assert pubsub is not None
        until = time.monotonic() + timeout
        try:
            # None also comes back for the subscription's own confirmation: wait on until a message or the time.
            while (left := until - time.monotonic()) > 0:
                if await pubsub.get_message(timeout=left) is not None:
                    return
        except (RedisError, OSError):
            await asyncio.sleep(max(0.0, until - time.monotonic()))

    try:
        yield announced if pubsub is not None else None
    finally:
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()


@functools.cache
def _async_redis(url: str) -> AsyncRedis:
    return AsyncRedis.from_url(url, socket_connect_timeout=0.5)


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
