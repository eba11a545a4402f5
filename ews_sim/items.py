"""CalendarItem fields read from requests (CreateItem, UpdateItem), with the rules Exchange applies on save.

Writing items back is ``ews_sim.item_xml``; searching them is ``ews_sim.restrictions``. Exchange's
rules applied here: a subject is cut to 255 characters; an all-day item's start moves back and its
end forward to midnight in the item's time zone (its StartTimeZone, else the request's
TimeZoneContext, else UTC), as Microsoft's "Create all-day events by using EWS" describes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, time, timedelta, tzinfo

from lxml import etree

from ews_sim import timezones
from ews_sim.item_xml import Ctx, Shape, id_only_xml, item_xml
from ews_sim.recurrence import Recurrence, RecurrenceError
from ews_sim.store import Attendee, CalendarItem, ExtendedValue, ext_key
from ews_sim.xmlutil import child_text, local, parse_bool, parse_dt, tq

__all__ = ["Ctx", "FieldError", "Shape", "apply_element", "id_only_xml", "item_xml"]

MAX_SUBJECT = 255


class FieldError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _attendees(elem: etree._Element) -> list[Attendee]:
    people = []
    for node in elem.findall(tq("Attendee")):
        box = node.find(tq("Mailbox"))
        email = (child_text(box, "EmailAddress") or "").strip() if box is not None else ""
        if not email:
            raise FieldError("ErrorInvalidRecipients", "An attendee has no e-mail address.")
        people.append(Attendee(email=email, name=(child_text(box, "Name") or "").strip()))
    return people


def _parse_extended(elem: etree._Element) -> ExtendedValue:
    uri = elem.find(tq("ExtendedFieldURI"))
    if uri is None:
        raise FieldError("ErrorInvalidExtendedProperty", "ExtendedProperty without ExtendedFieldURI.")
    values = elem.find(tq("Values"))
    if values is not None:
        value: str | list[str] = [v.text or "" for v in values.findall(tq("Value"))]
    else:
        value = child_text(elem, "Value") or ""
    return ExtendedValue(attrs=dict(uri.attrib), value=value)


def cut_subject(text: str) -> str:
    return text[:MAX_SUBJECT]


def _recurrence(elem: etree._Element) -> Recurrence:
    try:
        return Recurrence.from_xml(elem)
    except (RecurrenceError, ValueError) as exc:
        raise FieldError(getattr(exc, "code", "ErrorInvalidRecurrence"), str(exc)) from exc


# Elements whose text is stored as it comes, by attribute name.
_TEXT = {
    "Sensitivity": "sensitivity",
    "Importance": "importance",
    "LegacyFreeBusyStatus": "free_busy",
    "Location": "location",
    "UID": "uid",
    "InReplyTo": "in_reply_to",
    "When": "when",
    "MeetingWorkspaceUrl": "meeting_workspace_url",
    "NetShowUrl": "net_show_url",
    "Culture": "culture",
}
_BOOL = {
    "ReminderIsSet": "reminder_is_set",
    "IsAllDayEvent": "is_all_day",
    "IsResponseRequested": "is_response_requested",
    "AllowNewTimeProposal": "allow_new_time_proposal",
}
_LISTS = {"RequiredAttendees": "required", "OptionalAttendees": "optional", "Resources": "resources"}


def apply_element(item: CalendarItem, elem: etree._Element, zone: tzinfo | None) -> None:
    """Set one property from a request's CalendarItem child element."""
    name = local(elem)
    text = elem.text or ""
    if name in _TEXT:
        setattr(item, _TEXT[name], text)
    elif name in _BOOL:
        setattr(item, _BOOL[name], parse_bool(text))
    elif name in _LISTS:
        setattr(item, _LISTS[name], _merge_answers(getattr(item, _LISTS[name]), _attendees(elem)))
    elif name == "Subject":
        item.subject = cut_subject(text)
    elif name == "Body":
        item.body, item.body_type = text, elem.get("BodyType", "Text")
    elif name == "Categories":
        item.categories = [s.text or "" for s in elem]
    elif name == "ReminderMinutesBeforeStart":
        item.reminder_minutes = int(text)
    elif name == "ReminderDueBy":
        item.reminder_due_by = parse_dt(text, zone)
    elif name in ("Start", "End"):
        setattr(item, name.lower(), parse_dt(text, zone))
    elif name == "ConferenceType":
        item.conference_type = int(text)
    elif name in ("StartTimeZone", "EndTimeZone"):
        setattr(item, "start_tz" if name == "StartTimeZone" else "end_tz", elem.get("Id"))
    elif name == "Recurrence":
        item.recurrence = _recurrence(elem)
    elif name == "ExtendedProperty":
        value = _parse_extended(elem)
        item.extended[ext_key(value.attrs)] = value
    # Other settable properties (ItemClass, MeetingTimeZone, ...) change nothing the simulator reports.


def _merge_answers(old: list[Attendee], new: list[Attendee]) -> list[Attendee]:
    """Keep the answers of attendees who stay on the list."""
    previous = {a.email.lower(): a for a in old}
    for person in new:
        kept = previous.get(person.email.lower())
        if kept is not None:
            person.response, person.last_response_time = kept.response, kept.last_response_time
    return new


def _reset(name: str, value: object) -> Callable[[CalendarItem], None]:
    return lambda item: setattr(item, name, value)


DELETABLE_DEFAULTS: dict[str, Callable[[CalendarItem], None]] = {
    "item:Subject": _reset("subject", ""),
    "item:Body": _reset("body", ""),
    "item:Categories": lambda i: setattr(i, "categories", []),
    "item:InReplyTo": _reset("in_reply_to", None),
    "item:Culture": _reset("culture", "en-US"),
    "item:ReminderDueBy": _reset("reminder_due_by", None),
    "calendar:Location": _reset("location", None),
    "calendar:When": _reset("when", None),
    "calendar:RequiredAttendees": lambda i: setattr(i, "required", []),
    "calendar:OptionalAttendees": lambda i: setattr(i, "optional", []),
    "calendar:Resources": lambda i: setattr(i, "resources", []),
    "item:ReminderMinutesBeforeStart": _reset("reminder_minutes", 15),
    "calendar:StartTimeZone": _reset("start_tz", None),
    "calendar:EndTimeZone": _reset("end_tz", None),
    "calendar:MeetingTimeZone": lambda i: None,
    "calendar:MeetingWorkspaceUrl": _reset("meeting_workspace_url", None),
    "calendar:NetShowUrl": _reset("net_show_url", None),
    "calendar:ConferenceType": _reset("conference_type", 0),
    "calendar:Recurrence": _reset("recurrence", None),
    "item:Sensitivity": _reset("sensitivity", "Normal"),
    "item:Importance": _reset("importance", "Normal"),
}


def check_times(item: CalendarItem) -> None:
    if item.end < item.start:
        raise FieldError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


def item_zone(item: CalendarItem, fallback: tzinfo | None) -> tzinfo:
    """The zone an item's local times are in: its StartTimeZone, else the request's, else UTC."""
    if item.start_tz:
        try:
            return timezones.zone(item.start_tz)
        except timezones.UnknownTimeZoneError:
            pass
    return fallback or UTC


def snap_all_day(item: CalendarItem, fallback: tzinfo | None) -> None:
    """An all-day item spans whole days in its zone: the start moves back to midnight, the end forward."""
    if not item.is_all_day:
        return
    tz = item_zone(item, fallback)
    start, end = item.start.astimezone(tz), item.end.astimezone(tz)
    first = datetime.combine(start.date(), time(0), tz)
    last = datetime.combine(end.date(), time(0), tz)
    if end.replace(tzinfo=None) != last.replace(tzinfo=None):
        last = datetime.combine(end.date() + timedelta(days=1), time(0), tz)
    if last <= first:
        last = datetime.combine(first.date() + timedelta(days=1), time(0), tz)
    item.start, item.end = first.astimezone(UTC), last.astimezone(UTC)


def iter_children(elem: etree._Element) -> Iterable[etree._Element]:
    return (c for c in elem if isinstance(c.tag, str))
