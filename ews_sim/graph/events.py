"""Events: list, calendarView, create, get, update, delete, cancel and the attendee's answers; the calendar itself.

Meetings go through ``ews_sim.meetings`` exactly as the EWS side's do, so attendees' copies and the
sent-message record (``org.messages``) stay one mechanism: an event with attendees is a meeting
and its invitations go out when it is created (Graph has no "save without sending"); an update
to what attendees see sends updates (added attendees get requests, removed ones cancellations);
deleting or cancelling an organizer's meeting cancels it for everyone.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from ews_sim import meetings, series
from ews_sim.graph import query
from ews_sim.graph.directory import object_id
from ews_sim.graph.errors import GraphError, bad_request
from ews_sim.graph.json import (
    ATTENDEE_VISIBLE,
    Written,
    apply_event,
    canonical,
    event_json,
    parse_local,
    rest_id,
)
from ews_sim.graph.json import ews_id as to_ews_id
from ews_sim.graph.routes import GraphRequest, GraphResponse
from ews_sim.ops.base import folder_id
from ews_sim.ops.create_item import new_uid
from ews_sim.store import Attendee, CalendarItem, new_item_id
from ews_sim.xmlutil import now

DEFAULT_PAGE = 10
MAX_PAGE = 1000
TEAMS = "teamsForBusiness"
EVENT_PROPERTIES = {
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "id",
}


# --- shared helpers -----------------------------------------------------------------------------------


def _event(req: GraphRequest) -> CalendarItem:
    rid = req.params["event"]
    eid = to_ews_id(rid)
    try:
        base64.b64decode(eid, validate=True)
    except (binascii.Error, ValueError):
        raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.") from None
    item = series.resolve(req.org, req.mailbox or "", eid)
    if item is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return item


def _context(req: GraphRequest, suffix: str) -> str:
    return f"{req.base}/v1.0/$metadata#users('{quote(req.params.get('user', ''), safe='@')}')/{suffix}"


def _entity(req: GraphRequest, item: CalendarItem, status: int = 200, expand: bool = True) -> GraphResponse:
    select = query.parse_select(req.query.get("$select"), EVENT_PROPERTIES)
    view = req.view(select=select, expand=query.parse_expand(req.query.get("$expand")) if expand else None)
    body = {"@odata.context": _context(req, "events/$entity"), **event_json(item, view)}
    headers = {"ETag": body["@odata.etag"]} if "@odata.etag" in body else {}
    zone_name = req.prefer.get("outlook.timezone")
    if zone_name:
        headers["Preference-Applied"] = f'outlook.timezone="{zone_name}"'
    return GraphResponse(status, body, headers, odata_type="graph.event")


def _page(req: GraphRequest, found: list[CalendarItem], context: str) -> GraphResponse:
    select = query.parse_select(req.query.get("$select"), EVENT_PROPERTIES)
    view = req.view(select=select, expand=query.parse_expand(req.query.get("$expand")))
    top = query.int_option(req.query, "$top", DEFAULT_PAGE, 1, MAX_PAGE)
    skip = query.int_option(req.query, "$skip", 0, 0, 10**9)
    page = found[skip : skip + top]
    body: dict[str, Any] = {"@odata.context": _context(req, context)}
    if skip + top < len(found):
        options = {k: v for k, v in req.query.items() if k != "$skip"}
        options["$top"] = str(top)
        options["$skip"] = str(skip + top)
        body["@odata.nextLink"] = f"{req.base}/v1.0{req.path}?{urlencode(options, quote_via=quote, safe='$,')}"
    body["value"] = [event_json(item, view) for item in page]
    headers = {}
    if view.zone_name:
        headers["Preference-Applied"] = f'outlook.timezone="{view.zone_name}"'
    return GraphResponse(200, body, headers, odata_type="Collection(graph.event)")


def _body(req: GraphRequest) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    return canonical(req.body)


def allowed_providers(req: GraphRequest, mailbox: str) -> list[str]:
    disabled = any(a in req.directory.teams_disabled for a in req.org.addresses(mailbox))
    return [] if disabled else [TEAMS]


def join_url(req: GraphRequest, item: CalendarItem) -> str:
    """A Teams join link of the real shape, stable for the meeting (derived from its iCalUId)."""
    meeting = str(uuid.UUID(bytes=hashlib.sha256(item.uid.encode()).digest()[:16]))
    thread = base64.b64encode(meeting.encode()).decode().rstrip("=")
    tenant, user = req.caller.app.tenant_id, object_id("user", item.mailbox)
    return (
        f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"
        f"?context=%7b%22Tid%22%3a%22{tenant}%22%2c%22Oid%22%3a%22{user}%22%7d"
    )


def _online_meeting(req: GraphRequest, item: CalendarItem, written: Written) -> bool:
    """Attach a Teams meeting when asked and the organizer's calendar allows it; True if one was attached.

    As Graph: once attached it cannot be removed or switched; asked for a provider the calendar does not allow
    (``allowedOnlineMeetingProviders``), the event is saved as an ordinary one (``isOnlineMeeting`` false)."""
    if item.is_online_meeting or not written.online:
        return False
    provider = written.provider if written.provider not in (None, "unknown") else TEAMS
    if provider not in allowed_providers(req, item.mailbox):
        return False
    item.is_online_meeting, item.online_meeting_provider = True, provider
    item.join_url = join_url(req, item)
    return True


def _check_times(item: CalendarItem) -> None:
    if item.end < item.start:
        raise GraphError(
            400, "ErrorCalendarEndDateIsEarlierThanStartDate", "The end date is earlier than the start date."
        )


def _check_if_match(req: GraphRequest, item: CalendarItem) -> None:
    wanted = req.headers.get("If-Match")
    if wanted is None:
        return
    tags = [t.strip() for t in wanted.split(",")]
    for tag in tags:
        if tag == "*":
            return
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        if tag.strip('"') == item.change_key:
            return
    raise GraphError(412, "ErrorIrresolvableConflict")


# --- collections --------------------------------------------------------------------------------------


def list_events(req: GraphRequest) -> GraphResponse:
    found = list(req.org.calendar(req.mailbox or "").values())
    text = req.query.get("$filter")
    if text:
        predicate = query.compile_filter(text)
        found = [item for item in found if predicate(item)]
    found = query.order(found, req.query.get("$orderby"))
    return _page(req, found, "events")


def _window(req: GraphRequest) -> tuple[datetime, datetime]:
    start_text = next((v for k, v in req.query.items() if k.lower() == "startdatetime"), None)
    end_text = next((v for k, v in req.query.items() if k.lower() == "enddatetime"), None)
    if not start_text or not end_text:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    return parse_local(start_text, UTC, "startDateTime"), parse_local(end_text, UTC, "endDateTime")


def calendar_view(req: GraphRequest) -> GraphResponse:
    """Single events, occurrences and exceptions in the window; one ending exactly at its start is in it, as
    Exchange's calendar view has it (microsoftgraph/microsoft-graph-docs-contrib#387 shows the same)."""
    start, end = _window(req)
    found = series.view(req.org, req.mailbox or "", start, end, edge=True)
    text = req.query.get("$filter")
    if text:
        predicate = query.compile_filter(text)
        found = [item for item in found if predicate(item)]
    found = query.order(found, req.query.get("$orderby"))
    return _page(req, found, "calendarView")


def list_instances(req: GraphRequest) -> GraphResponse:
    """The occurrences and exceptions of a series master within the window."""
    master = _event(req)
    if master.recurrence is None:
        raise GraphError(400, "ErrorInvalidRequest", "Your request can't be completed. The event is not a series.")
    start, end = _window(req)
    found = sorted(series.expand(master, start, end, edge=True), key=lambda i: (i.start, i.end))
    return _page(req, found, f"events('{rest_id(master.item_id)}')/instances")


def _recurring(item: CalendarItem, stored: CalendarItem | None = None) -> None:
    """A new or re-patterned series starts at its first occurrence; a series whose times or pattern changed starts
    over from its pattern."""
    if item.recurrence is None:
        item.exceptions.clear()
        item.deleted_occurrences.clear()
        return
    if stored is not None and (item.recurrence, item.start, item.end) == (stored.recurrence, stored.start, stored.end):
        return
    try:
        series.reschedule(item)
    except series.SeriesError as exc:
        raise GraphError(400, "ErrorPropertyValidationFailure", exc.message) from exc


# --- one event ----------------------------------------------------------------------------------------


def create_event(req: GraphRequest) -> GraphResponse:
    body = _body(req)
    mailbox = req.mailbox or ""
    transaction = body.get("transactionId")
    if transaction is not None:
        if not isinstance(transaction, str) or not transaction:
            raise bad_request("transactionId must be a non-empty string.", "ErrorInvalidRequest")
        # A retried create: the event this transaction already made, and nothing new.
        for existing in req.org.calendar(mailbox).values():
            if existing.transaction_id == transaction:
                return _entity(req, existing, status=201)
    stamp = now()
    item = CalendarItem(item_id=new_item_id(), mailbox=mailbox, uid=new_uid(), start=stamp, end=stamp)
    written = apply_event(item, body)
    meetings.resolve_addresses(req.org, item)
    if not {"start", "end"} <= written.changed:
        raise GraphError(
            400, "ErrorInvalidRequest", "Your request can't be completed. An event needs a start and an end."
        )
    _check_times(item)
    _recurring(item)
    item.transaction_id = transaction
    item.organizer = Attendee(email=mailbox, name=mailbox, response="Organizer")
    _online_meeting(req, item, written)
    req.org.add_item(item)
    if item.attendees():
        item.is_meeting = True
        meetings.send_invitations(req.org, item, old_emails=set(), times_changed=False)
    return _entity(req, item, status=201)


def get_event(req: GraphRequest) -> GraphResponse:
    return _entity(req, _event(req))


def update_event(req: GraphRequest) -> GraphResponse:
    stored = _event(req)
    _check_if_match(req, stored)
    body = _body(req)
    if "transactionId" in body and body["transactionId"] != stored.transaction_id:
        raise bad_request("The transactionId of an event cannot be changed.", "ErrorInvalidRequest")
    item = copy.deepcopy(stored)
    old_emails = meetings.invited(stored)
    written = apply_event(item, body)
    meetings.resolve_addresses(req.org, item)
    _check_times(item)
    if stored.instance_kind is not None:
        return _update_occurrence(req, item, written)
    _recurring(item, stored)
    attached = item.is_organizer_copy and _online_meeting(req, item, written)
    item.touch()
    req.org.add_item(item)
    if item.is_organizer_copy:
        visible = bool(written.changed & ATTENDEE_VISIBLE) or attached
        if item.attendees() and visible:
            if stored.meeting_request_was_sent:
                item.sequence += 1
            times_changed = (item.start, item.end) != (stored.start, stored.end)
            meetings.send_invitations(req.org, item, old_emails=old_emails, times_changed=times_changed)
        elif not item.attendees() and old_emails:
            meetings.cancel_all(req.org, stored)  # every attendee was removed
    if item.attendees():
        item.is_meeting = True
    if req.prefer.get("return") == "minimal":
        return GraphResponse(204, headers={"ETag": f'W/"{item.change_key}"'})
    return _entity(req, item, expand=False)


def _update_occurrence(req: GraphRequest, item: CalendarItem, written: Written) -> GraphResponse:
    master = req.org.item(req.mailbox or "", item.master_id or "")
    if master is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if item.recurrence is not None:
        raise GraphError(400, "ErrorPropertyValidationFailure", "An occurrence cannot have a recurrence of its own.")
    series.save_exception(master, item)
    if master.is_organizer_copy and master.attendees() and written.changed & ATTENDEE_VISIBLE:
        master.sequence += 1
        meetings.send_invitations(req.org, master, old_emails=meetings.invited(master), times_changed=False)
    if req.prefer.get("return") == "minimal":
        return GraphResponse(204, headers={"ETag": f'W/"{item.change_key}"'})
    return _entity(req, item, expand=False)


def _drop_occurrence(req: GraphRequest, item: CalendarItem) -> None:
    """One occurrence leaves its series; the organizer's attendees get its cancellation."""
    master = req.org.item(req.mailbox or "", item.master_id or "")
    if master is not None and item.original_start is not None:
        series.delete_occurrence(master, item.original_start)
        if master.is_meeting and master.is_organizer_copy:
            meetings.cancel_occurrence(req.org, master, item)


def delete_event(req: GraphRequest) -> GraphResponse:
    item = _event(req)
    if item.instance_kind is not None:
        _drop_occurrence(req, item)
        return GraphResponse(204)
    if item.is_meeting and item.is_organizer_copy:
        meetings.cancel_all(req.org, item)
    req.org.remove_item(item)
    return GraphResponse(204)


def cancel_event(req: GraphRequest) -> GraphResponse:
    item = _event(req)
    if req.body is not None and not isinstance(req.body, dict):
        raise bad_request("Invalid request payload.")
    if not item.is_organizer_copy:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    if item.instance_kind is not None:
        _drop_occurrence(req, item)  # one occurrence: cancelled for the attendees, gone from the series
        return GraphResponse(202)
    meetings.cancel_all(req.org, item)
    req.org.remove_item(item)
    return GraphResponse(202)


def responder(answer: str) -> Any:
    """accept / tentativelyAccept / decline of an attendee's copy; the organizer's event records the answer
    unless ``sendResponse`` is false."""

    def respond(req: GraphRequest) -> GraphResponse:
        found = _event(req)
        item = series.master_of(req.org, req.mailbox or "", found) or found  # an occurrence's answer is its series'
        body = canonical(req.body) if isinstance(req.body, dict) else {}
        folded = {k.lower(): v for k, v in body.items()}
        send = folded.get("sendresponse", True)
        if not isinstance(send, bool):
            raise bad_request("SendResponse must be true or false.")
        if item.is_organizer_copy:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. You can't respond to a meeting you organized.",
            )
        if send:
            meetings.respond(req.org, req.mailbox or "", item, answer)
        elif answer == "Decline":
            req.org.remove_item(item)
        else:
            item.my_response, item.free_busy = answer, meetings.ANSWERS[answer]
            item.touch()
        return GraphResponse(202)

    return respond


def get_calendar(req: GraphRequest) -> GraphResponse:
    mailbox = req.mailbox or ""
    allowed = allowed_providers(req, mailbox)
    key = base64.b64encode(hashlib.sha256(f"calendar:{mailbox}".encode()).digest()[:12]).decode()
    body = {
        "@odata.context": _context(req, "calendar/$entity"),
        "id": rest_id(folder_id("calendar", mailbox)),
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": True,
        "changeKey": key,
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": allowed,
        "defaultOnlineMeetingProvider": allowed[0] if allowed else "unknown",
        "isTallyingResponses": True,
        "isRemovable": False,
        "owner": {"name": mailbox, "address": mailbox},
    }
    return GraphResponse(200, body, odata_type="graph.calendar")
