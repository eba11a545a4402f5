"""``/api/salesforce/scheduler/postback``: appointments written into every attendee's calendar."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_shim.deps import CorrelationDep, QueueDep, SettingsDep, SyncPrincipal
from api_shim.postback import service
from api_shim.postback.schemas import MailboxResult, PostbackCreate, PostbackDelete, PostbackUpdate
from api_shim.writes import WaitQuery, accept, body_correlation

router = APIRouter(prefix="/api/salesforce/scheduler/postback", tags=["postback"])

RESPONSES = {
    200: {"model": list[MailboxResult], "description": "Every mailbox reached a final code."},
    202: {
        "model": list[MailboxResult],
        "description": "Accepted; unfinished mailboxes are `Pending`. Poll `Location`.",
    },
}
DESCRIPTION = (
    "Records the write durably, enqueues it, then waits up to `wait` seconds for every mailbox. "
    "Answers one entry per mailbox, organizer first. `Location` and `X-Job-Id` name the job to poll."
)


@router.post(
    "", responses=RESPONSES, summary="Create the event's appointment in every mailbox", description=DESCRIPTION
)
async def create(
    request: Request,
    body: PostbackCreate,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    return await accept(lambda session: service.create(session, principal, body, correlation_id), wait, settings, queue)


@router.put(
    "",
    responses=RESPONSES,
    summary="Move the event to its new state in every mailbox",
    description=DESCRIPTION + " Mailboxes of `original` missing from `new` lose the appointment.",
)
async def update(
    request: Request,
    body: PostbackUpdate,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    return await accept(lambda session: service.update(session, principal, body, correlation_id), wait, settings, queue)


@router.delete(
    "",
    responses=RESPONSES,
    summary="Remove the event's appointment from every mailbox",
    description=DESCRIPTION + " Deleting what is already gone is `NoError`.",
)
async def delete(
    request: Request,
    body: PostbackDelete,
    principal: SyncPrincipal,
    settings: SettingsDep,
    queue: QueueDep,
    correlation_id: CorrelationDep,
    wait: WaitQuery = None,
) -> JSONResponse:
    correlation_id = body_correlation(request, body.salesforceCorrelationId)
    return await accept(lambda session: service.delete(session, principal, body, correlation_id), wait, settings, queue)
