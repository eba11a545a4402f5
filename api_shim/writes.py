"""What every write endpoint does around its service call: open a unit of work, commit, enqueue, wait, answer.

Once the commit succeeded the write is stored, and the caller hears 200/202 with its ``Location``
whatever fails afterwards (the broker, the reads while waiting). A commit whose outcome is unknown (the
connection broke during it) is looked up before anyone is told it failed: a refused write must have changed
nothing, so the answer waits until the store says whether it holds the job, for as long as a caller may still
be listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api_shim.errors import ApiError
from api_shim.jobs.service import job_exists, job_location, wait_for
from downsync import observability
from downsync.core.dispatch import WorkQueue
from downsync.db import get_engine, session_scope
from downsync.jobs import Accepted, Listed, mark_unsent
from downsync.models import PENDING
from downsync.settings import Settings

log = logging.getLogger(__name__)
# How long a write whose commit may or may not have happened waits for the store to say which, before it is
# answered 503 all the same: Salesforce's longest callout timeout, after which nobody hears the answer anyway.
# The store being down for a while is exactly when commits are lost, so a few seconds would not do.
COMMIT_LOOKUP_SECONDS = 120.0
_clock = time.monotonic
_sleep = asyncio.sleep

# A write's service call, given the unit of work it records the write in.
Work = Callable[[Session], Accepted]
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


async def _stored_after_all(job_id: str, seconds: float = COMMIT_LOOKUP_SECONDS) -> bool | None:
    """Whether the job is in the store, asking until it answers or the time is up (None: still unknown)."""
    deadline = _clock() + seconds
    while True:
        try:
            return await run_in_threadpool(job_exists, job_id)
        except SQLAlchemyError:
            if _clock() >= deadline:
                return None
            await _sleep(0.5)


def open_session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _take(work: Work, queue: WorkQueue) -> tuple[Accepted, SQLAlchemyError | None]:
    """Accept, commit and enqueue in one trip to a worker thread (each trip costs the event loop about as much as
    a statement). Returns the commit's error, if its outcome is unknown; then nothing was enqueued."""
    with open_session() as session:
        accepted = work(session)
        try:
            session.commit()
        except SQLAlchemyError as exc:
            return accepted, exc
    _send(accepted, queue)
    return accepted, None


def _send(accepted: Accepted, queue: WorkQueue) -> None:
    tenant = observability.tenant_name.get()
    labels = {pid: f"{tenant} {label}" for pid, label in accepted.labels.items()}
    if not queue.enqueue(accepted.placement_ids, labels):
        _unsent(accepted.placement_ids)


async def accept(
    work: Work,
    wait: float | None,
    settings: Settings,
    queue: WorkQueue,
    single: bool = False,
) -> JSONResponse:
    """Record a write (``work`` accepts it in a fresh unit of work), commit it, enqueue it, and answer with its
    results once final or when the wait is over. What ``work`` raises propagates, with nothing recorded."""
    accepted, lost = await run_in_threadpool(_take, work, queue)
    if lost is not None:
        stored = await _stored_after_all(accepted.job.id)
        if not stored:
            if stored is None:
                log.error(
                    "the store did not say whether job %s was committed; answered as not accepted", accepted.job.id
                )
            raise lost
        log.info("the commit's answer was lost, but the job is stored: answering as accepted")
        await run_in_threadpool(_send, accepted, queue)
    return await answer(accepted.job.id, wait, settings, single, listed=accepted.listed)


def _unsent(placement_ids: list[int]) -> None:
    """The broker is down: the placements are marked unsent, so a dispatcher sends them as soon as it is back."""
    try:
        with session_scope() as session:
            mark_unsent(session, placement_ids)
    except SQLAlchemyError as exc:  # they are sent again after the redelivery time all the same
        log.warning("could not mark placements unsent: %s", exc)


def _seconds(wait: float | None, settings: Settings) -> float:
    return min(settings.postback_wait_seconds if wait is None else wait, settings.postback_wait_max_seconds)


def _respond(job_id: str, results: list[dict[str, str]], final: bool, single: bool) -> JSONResponse:
    headers = {"Location": job_location(job_id), "X-Job-Id": job_id}
    body = results[0] if single and results else results
    return JSONResponse(body, status_code=200 if final else 202, headers=headers)


async def answer(
    job_id: str, wait: float | None, settings: Settings, single: bool = False, listed: tuple[Listed, ...] | None = None
) -> JSONResponse:
    """The job's per-mailbox codes (one object for a meeting's organizer), 200 when all are final, else 202.

    ``listed`` (the mailboxes of a write just stored) answers without reading the store when there is nothing
    to wait for, or when the store cannot be read: the write is stored, so it is accepted and pending.
    """
    seconds = _seconds(wait, settings)
    if listed is not None and (seconds <= 0 or not listed):
        return _respond(job_id, [{"email": e.email, "errorCode": PENDING} for e in listed], not listed, single)
    try:
        snap = await wait_for(job_id, seconds)
    except SQLAlchemyError as exc:
        if listed is None:
            raise
        log.warning("job %s is stored but could not be read back: %s", job_id, exc)
        return _respond(job_id, [{"email": e.email, "errorCode": PENDING} for e in listed], False, single)
    if snap is None:
        raise ApiError(404, "ErrorJobNotFound", f"no job {job_id}")
    results = [{"email": r.email, "errorCode": r.error_code} for r in snap.results]
    return _respond(job_id, results, snap.final, single)
