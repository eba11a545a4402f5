"""calendar: getSchedule, free/busy of up to 20 schedules over at most 62 days.

Recurring series are expanded into their occurrences and exceptions within the window. Each schedule
is answered on its own: an address that is no mailbox gets an ``error`` entry
(``Unable to resolve e-mail address ...``), not a failed call. Items overlapping the window are
returned whole with their free/busy status; ``availabilityView`` has one digit per
``availabilityViewInterval`` minutes (0 free or working elsewhere, 1 tentative, 2 busy, 3 out of
office). Times are written in the ``Prefer: outlook.timezone`` zone, else UTC, as Graph documents.
Whole-request problems use the codes Graph passes through from Exchange's availability service.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from ews_sim import series
from ews_sim.graph.errors import GraphError, message_for
from ews_sim.graph.json import SHOW_AS, fmt_dtz, parse_dtz
from ews_sim.graph.routes import GraphRequest, GraphResponse
from ews_sim.store import CalendarItem

MAX_WINDOW_DAYS = 62
_DIGIT = {"Free": 48, "WorkingElsewhere": 48, "Tentative": 49, "Busy": 50, "OOF": 51}  # ord("0") ... ord("3")
_PRIVATE = {"Private", "Confidential"}
WORKING_HOURS = {
    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "startTime": "08:00:00.0000000",
    "endTime": "17:00:00.0000000",
    "timeZone": {"name": "UTC"},
}
# What Exchange Online answered for an address it could not resolve (microsoftgraph/microsoft-graph-docs#11225).
UNRESOLVED_CODE = "5009"


def _params(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return {k.lower(): v for k, v in body.items() if "@" not in k}


def _interval(value: Any, window: timedelta) -> int:
    if value is None:
        value = 30
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        minutes = 0
    if isinstance(value, bool) or not 5 <= minutes <= 1440 or timedelta(minutes=minutes) > window:
        raise GraphError(
            400,
            "ErrorInvalidMergedFreeBusyInterval",
            "The specified merged free/busy interval is not valid. Specify an interval that is less than the free/busy "
            "time window and between 5 and 1440 minutes.",
        )
    return minutes


def _view(items: list[CalendarItem], start: datetime, slots: int, step: timedelta) -> str:
    """One digit per slot, the strongest status of the items touching it (3 > 2 > 1 > 0)."""
    digits = bytearray(b"0" * slots)
    for item in items:
        digit = _DIGIT.get(item.free_busy, 48)
        if digit == 48:
            continue
        first = max(0, int((item.start - start) / step))
        last = min(slots, math.ceil((item.end - start) / step))
        for n in range(first, last):
            if digits[n] < digit:
                digits[n] = digit
    return digits.decode()


def _item(item: CalendarItem, zone_name: str | None, tz: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"isPrivate": item.sensitivity in _PRIVATE, "status": SHOW_AS.get(item.free_busy, "unknown")}
    if item.sensitivity not in _PRIVATE:
        out["subject"] = item.subject
        out["location"] = item.location or ""
    out["start"] = fmt_dtz(item.start, zone_name, tz)
    out["end"] = fmt_dtz(item.end, zone_name, tz)
    return out


def get_schedule(req: GraphRequest) -> GraphResponse:
    params = _params(req.body)
    schedules = params.get("schedules")
    if not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules):
        raise GraphError(400, "ErrorInvalidParameter", "Schedules must be a list of SMTP addresses.")
    if not schedules:
        raise GraphError(400, "ErrorMailboxDataArrayEmpty", "MailboxDataArray must contain at least one entry.")
    limit = req.directory.schedule_max
    if len(schedules) > limit:
        raise GraphError(
            400,
            "ErrorMailboxDataArrayTooBig",
            f"There are too many target users in the EmailAddress array. The allowed size = {limit}; the actual size "
            f"= {len(schedules)}.",
        )
    for key in ("starttime", "endtime"):
        if params.get(key) is None:
            raise GraphError(400, "ErrorInvalidParameter", f"The parameter {key} is required.")
    start, _ = parse_dtz(params["starttime"], "startTime")
    end, _ = parse_dtz(params["endtime"], "endTime")
    if end <= start:
        raise GraphError(
            400,
            "ErrorInvalidTimeInterval",
            "The time duration specified for FreeBusyViewOptions.TimeWindow is invalid.",
        )
    window = end - start
    if window > timedelta(days=MAX_WINDOW_DAYS):
        days = window.days + (1 if window % timedelta(days=1) else 0)
        raise GraphError(
            400,
            "ErrorTimeIntervalTooBig",
            "The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. The allowed limit = "
            f"{MAX_WINDOW_DAYS} days; the actual limit = {days} days.",
        )
    minutes = _interval(params.get("availabilityviewinterval"), window)
    step = timedelta(minutes=minutes)
    slots = math.ceil(window / step)
    view = req.view()
    values = []
    for address in schedules:
        email = req.org.primary(address)  # any address of a mailbox; the answer keeps the one asked for
        code = req.schedule_faults.get(address.strip().lower()) or req.schedule_faults.get(email)
        if code is not None:
            values.append({"scheduleId": address, "error": {"message": message_for(code), "responseCode": code}})
            continue
        if not req.org.is_mailbox(email):
            values.append(
                {
                    "scheduleId": address,
                    "error": {
                        "message": f"Unable to resolve e-mail address {address} to an Active Directory object.",
                        "responseCode": UNRESOLVED_CODE,
                    },
                }
            )
            continue
        if any(a in req.directory.on_premises for a in req.org.addresses(email)):
            code = "MailboxNotEnabledForRESTAPI"
            values.append({"scheduleId": address, "error": {"message": message_for(code), "responseCode": code}})
            continue
        items = series.view(req.org, email, start, end)
        values.append(
            {
                "scheduleId": address,
                "availabilityView": _view(items, start, slots, step),
                "scheduleItems": [_item(i, view.zone_name, view.tz) for i in items],
                "workingHours": WORKING_HOURS,
            }
        )
    body = {
        "@odata.context": f"{req.base}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
        "value": values,
    }
    headers = {"Preference-Applied": f'outlook.timezone="{view.zone_name}"'} if view.zone_name else {}
    return GraphResponse(200, body, headers, odata_type="Collection(graph.scheduleInformation)")
