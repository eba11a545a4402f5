"""``/api/salesforce/scheduler/meeting``: real meetings with invitations, on behalf of the organizer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api_shim.deps import AvailabilityPrincipal, CorrelationDep, QueueDep, SessionDep, SettingsDep, SyncPrincipal
from api_shim.fields import Email, EventId
from api_shim.meeting import service
from api_shim.meeting.schemas import MeetingCreate, MeetingDelete, MeetingPatch, MeetingResult, MeetingView
from api_shim.writes import WaitQuery, accept, answer, body_correlation

router = APIRouter(prefix="/api/salesforce/scheduler/meeting", tags=["meeting"])
RESPONSES = {
    200: {"model": MeetingResult, "description": "The organizer's mailbox reached a final code."},
    202: {"model": MeetingResult, "description": "Accepted; `Pending` until done. Poll `Location`."},
    404: {"description": "`MeetingNotFound`: no such meeting for this organizer."},
}


@router.post(
    "",
    responses={**RESPONSES, 409: {"description": "`MeetingAlreadyExists`: the id has another meeting."}},
    summary="Schedule a meeting and invite every attendee",
)
async def create(
    request: Request,
    body: MeetingCreate,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    try:
        return await accept(
            lambda session: service.create(session, principal, body, correlation_id), wait, settings, queue, single=True
        )
    except service.RepeatedCreate as repeat:
        # The same meeting again: the same answer again, and nothing is sent twice (its unit of work has ended, so
        # on SQLite it no longer holds the lock the wait needs to read the job).
        return await answer(repeat.job_id, wait, settings, single=True)


@router.patch("", responses=RESPONSES, summary="Change the fields present; attendees are notified")
async def patch(
    request: Request,
    body: MeetingPatch,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    return await accept(
        lambda session: service.patch(session, principal, body, correlation_id), wait, settings, queue, single=True
    )


@router.delete("", responses=RESPONSES, summary="Cancel the meeting; attendees get the cancellation")
async def delete(
    request: Request,
    body: MeetingDelete,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    return await accept(
        lambda session: service.delete(session, principal, body.id, body.organizerEmail, correlation_id),
        wait,
        settings,
        queue,
        single=True,
    )


@router.get(
    "",
    response_model=MeetingView,
    responses={404: RESPONSES[404]},
    summary="The meeting as the organizer's calendar holds it now, with each attendee's answer",
)
async def read(
    session: SessionDep,
    principal: AvailabilityPrincipal,
    settings: SettingsDep,
    correlation_id: CorrelationDep,
    event_id: Annotated[EventId, Query(alias="id")],
    organizer: Annotated[Email, Query(alias="organizerEmail")],
) -> MeetingView:
    return await run_in_threadpool(service.read, session, principal, event_id, organizer, settings)
