"""``/api/salesforce/scheduler/availability``: who is busy when, answered synchronously and always in time."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api_shim.availability import service
from api_shim.availability.schemas import AttendeeAvailability, AttendeeQuery
from api_shim.deps import AvailabilityPrincipal, CorrelationDep, SessionDep, SettingsDep
from api_shim.errors import ApiError
from api_shim.fields import UtcTime
from downsync.settings import get_settings

router = APIRouter(prefix="/api/salesforce/scheduler/availability", tags=["availability"])


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "ErrorInvalidRequest", f"{field} {problem}", [{"field": field, "problem": problem}])


@router.post(
    "",
    response_model=list[AttendeeAvailability],
    response_model_exclude_none=True,
    summary="Busy slots of each attendee between from and to",
    description=(
        "One entry per requested attendee, in request order. Slots are the attendee's Busy, OOF, Tentative and "
        "WorkingElsewhere time (a tenant setting), clipped to the window and merged. An attendee whose lookup "
        "failed or did not answer before the deadline gets its errorCode and one slot covering the whole window, "
        "unless `onError=free`."
    ),
)
async def availability(
    session: SessionDep,
    principal: AvailabilityPrincipal,
    settings: SettingsDep,
    correlation_id: CorrelationDep,
    start: Annotated[
        UtcTime,
        Query(
            alias="from",
            description="ISO 8601 start of the window",
            openapi_examples={"window": {"value": "2020-10-16T08:00:00Z"}},
        ),
    ],
    end: Annotated[
        UtcTime,
        Query(
            alias="to",
            description="ISO 8601 end of the window",
            openapi_examples={"window": {"value": "2020-10-17T08:00:00Z"}},
        ),
    ],
    entries: Annotated[
        list[AttendeeQuery],
        Body(
            description="The attendees, each once or more.",
            min_length=1,
            max_length=get_settings().availability_max_entries,
        ),
    ],
    on_error: Annotated[Literal["closed", "free"] | None, Query(alias="onError")] = None,
) -> JSONResponse:
    started = time.monotonic()
    if start >= end:
        raise _invalid("to", "must be after from")
    if (end - start).total_seconds() > settings.availability_max_window_days * 86400:
        raise _invalid("to", f"the window is longer than {settings.availability_max_window_days} days")
    if not entries:
        raise _invalid("body", "must list at least one attendee")
    if len(entries) > settings.availability_max_entries:
        raise _invalid("body", f"lists {len(entries)} attendees, more than {settings.availability_max_entries}")
    remaining = settings.availability_deadline_seconds - (time.monotonic() - started)
    body = await run_in_threadpool(
        service.answer, session, principal.tenant_id, entries, start, end, on_error, remaining, settings
    )
    return JSONResponse(body)
