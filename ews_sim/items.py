"""CalendarItem fields: reading them from requests and writing them in the schema's order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from lxml import etree

from ews_sim.store import EXT_ATTRS, Attendee, CalendarItem, ExtendedValue, ext_key
from ews_sim.xmlutil import attr, child_text, esc, fmt_bool, fmt_dt, local, parse_bool, parse_dt, tq


class FieldError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Shape:
    base: str = "IdOnly"
    fields: set[str] = field(default_factory=set)
    extended: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_element(cls, elem: etree._Element | None) -> Shape:
        if elem is None:
            return cls(base="Default")
        shape = cls(base=child_text(elem, "BaseShape") or "IdOnly")
        extra = elem.find(tq("AdditionalProperties"))
        if extra is not None:
            for prop in extra:
                name = local(prop)
                if name == "FieldURI":
                    shape.fields.add(prop.get("FieldURI", ""))
                elif name == "ExtendedFieldURI":
                    shape.extended.append(dict(prop.attrib))
        return shape

    def wants(self, uri: str) -> bool:
        if uri in self.fields or self.base == "AllProperties":
            return True
        return self.base == "Default" and uri in DEFAULT_FIELDS


def _text(tag: str, value: str) -> str:
    return f"<t:{tag}>{esc(value)}</t:{tag}>"


def _mailbox_xml(person: Attendee, in_org: Callable[[str], bool]) -> str:
    kind = "Mailbox" if in_org(person.email) else "OneOff"
    return (
        f"<t:Mailbox>{_text('Name', person.name or person.email)}{_text('EmailAddress', person.email)}"
        f"<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>{kind}</t:MailboxType></t:Mailbox>"
    )


def _attendees_xml(tag: str, people: list[Attendee], in_org: Callable[[str], bool]) -> str | None:
    if not people:
        return None
    parts = []
    for person in people:
        when = _text("LastResponseTime", fmt_dt(person.last_response_time)) if person.last_response_time else ""
        parts.append(
            f"<t:Attendee>{_mailbox_xml(person, in_org)}"
            f"<t:ResponseType>{person.response}</t:ResponseType>{when}</t:Attendee>"
        )
    return f"<t:{tag}>{''.join(parts)}</t:{tag}>"


def _duration(item: CalendarItem) -> str:
    minutes = int((item.end - item.start).total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    if hours or mins or not days:
        out += "T" + (f"{hours}H" if hours else "") + (f"{mins}M" if mins or not hours else "")
    return out


def _appointment_state(item: CalendarItem) -> int:
    # Bit flags as Exchange stores them: 1 meeting, 2 received (an attendee's copy), 4 cancelled.
    state = 1 if item.is_meeting else 0
    if item.is_meeting and not item.is_organizer_copy:
        state |= 2
    if item.is_cancelled:
        state |= 4
    return state


def _tz_xml(tag: str, tz_id: str | None) -> str | None:
    if not tz_id:
        return None
    return f"<t:{tag} Id={attr(tz_id)} Name={attr(tz_id)}/>"


Writer = Callable[[CalendarItem, "Ctx"], "str | None"]


@dataclass
class Ctx:
    """What writing an item needs beyond the item itself."""

    in_org: Callable[[str], bool]
    folder_id: str
    shape: Shape


ITEM_FIELDS: list[tuple[str, Writer]] = [
    ("item:ParentFolderId", lambda i, c: f'<t:ParentFolderId Id={attr(c.folder_id)} ChangeKey="AQAAAA=="/>'),
    ("item:ItemClass", lambda i, c: _text("ItemClass", "IPM.Appointment")),
    ("item:Subject", lambda i, c: _text("Subject", i.subject)),
    ("item:Sensitivity", lambda i, c: _text("Sensitivity", i.sensitivity)),
    ("item:Body", lambda i, c: f"<t:Body BodyType={attr(i.body_type)}>{esc(i.body)}</t:Body>"),
    ("item:DateTimeReceived", lambda i, c: _text("DateTimeReceived", fmt_dt(i.created))),
    ("item:Size", lambda i, c: _text("Size", str(512 + len(i.body.encode()) + len(i.subject.encode())))),
    (
        "item:Categories",
        lambda i, c: (
            "<t:Categories>" + "".join(_text("String", s) for s in i.categories) + "</t:Categories>"
            if i.categories
            else None
        ),
    ),
    ("item:Importance", lambda i, c: _text("Importance", i.importance)),
    ("item:IsSubmitted", lambda i, c: _text("IsSubmitted", "false")),
    ("item:IsDraft", lambda i, c: _text("IsDraft", "false")),
    ("item:IsFromMe", lambda i, c: _text("IsFromMe", "false")),
    ("item:IsResend", lambda i, c: _text("IsResend", "false")),
    ("item:IsUnmodified", lambda i, c: _text("IsUnmodified", "false")),
    ("item:DateTimeSent", lambda i, c: _text("DateTimeSent", fmt_dt(i.created))),
    ("item:DateTimeCreated", lambda i, c: _text("DateTimeCreated", fmt_dt(i.created))),
    ("item:ReminderDueBy", lambda i, c: _text("ReminderDueBy", fmt_dt(i.start))),
    ("item:ReminderIsSet", lambda i, c: _text("ReminderIsSet", fmt_bool(i.reminder_is_set))),
    (
        "item:ReminderMinutesBeforeStart",
        lambda i, c: _text("ReminderMinutesBeforeStart", str(i.reminder_minutes)),
    ),
    ("item:DisplayCc", lambda i, c: _text("DisplayCc", "; ".join(a.name or a.email for a in i.optional))),
    ("item:DisplayTo", lambda i, c: _text("DisplayTo", "; ".join(a.name or a.email for a in i.required))),
    ("item:HasAttachments", lambda i, c: _text("HasAttachments", "false")),
    ("item:ExtendedProperty", lambda i, c: _extended_xml(i, c.shape)),
    ("item:Culture", lambda i, c: _text("Culture", "en-US")),
    ("item:LastModifiedName", lambda i, c: _text("LastModifiedName", i.mailbox)),
    ("item:LastModifiedTime", lambda i, c: _text("LastModifiedTime", fmt_dt(i.modified))),
    ("item:IsAssociated", lambda i, c: _text("IsAssociated", "false")),
    ("calendar:UID", lambda i, c: _text("UID", i.uid)),
    ("calendar:DateTimeStamp", lambda i, c: _text("DateTimeStamp", fmt_dt(i.modified))),
    ("calendar:Start", lambda i, c: _text("Start", fmt_dt(i.start))),
    ("calendar:End", lambda i, c: _text("End", fmt_dt(i.end))),
    ("calendar:IsAllDayEvent", lambda i, c: _text("IsAllDayEvent", fmt_bool(i.is_all_day))),
    ("calendar:LegacyFreeBusyStatus", lambda i, c: _text("LegacyFreeBusyStatus", i.free_busy)),
    ("calendar:Location", lambda i, c: _text("Location", i.location) if i.location is not None else None),
    ("calendar:IsMeeting", lambda i, c: _text("IsMeeting", fmt_bool(i.is_meeting))),
    ("calendar:IsCancelled", lambda i, c: _text("IsCancelled", fmt_bool(i.is_cancelled))),
    ("calendar:IsRecurring", lambda i, c: _text("IsRecurring", "false")),
    (
        "calendar:MeetingRequestWasSent",
        lambda i, c: _text("MeetingRequestWasSent", fmt_bool(i.meeting_request_was_sent)),
    ),
    (
        "calendar:IsResponseRequested",
        lambda i, c: _text("IsResponseRequested", fmt_bool(i.is_response_requested)),
    ),
    ("calendar:CalendarItemType", lambda i, c: _text("CalendarItemType", "Single")),
    ("calendar:MyResponseType", lambda i, c: _text("MyResponseType", i.my_response)),
    (
        "calendar:Organizer",
        lambda i, c: f"<t:Organizer>{_mailbox_xml(i.organizer, c.in_org)}</t:Organizer>" if i.organizer else None,
    ),
    ("calendar:RequiredAttendees", lambda i, c: _attendees_xml("RequiredAttendees", i.required, c.in_org)),
    ("calendar:OptionalAttendees", lambda i, c: _attendees_xml("OptionalAttendees", i.optional, c.in_org)),
    ("calendar:Resources", lambda i, c: _attendees_xml("Resources", i.resources, c.in_org)),
    ("calendar:ConflictingMeetingCount", lambda i, c: _text("ConflictingMeetingCount", "0")),
    ("calendar:AdjacentMeetingCount", lambda i, c: _text("AdjacentMeetingCount", "0")),
    ("calendar:Duration", lambda i, c: _text("Duration", _duration(i))),
    ("calendar:AppointmentSequenceNumber", lambda i, c: _text("AppointmentSequenceNumber", str(i.sequence))),
    ("calendar:AppointmentState", lambda i, c: _text("AppointmentState", str(_appointment_state(i)))),
    ("calendar:StartTimeZone", lambda i, c: _tz_xml("StartTimeZone", i.start_tz)),
    ("calendar:EndTimeZone", lambda i, c: _tz_xml("EndTimeZone", i.end_tz)),
    ("calendar:ConferenceType", lambda i, c: _text("ConferenceType", "0")),
    (
        "calendar:AllowNewTimeProposal",
        lambda i, c: _text("AllowNewTimeProposal", fmt_bool(i.allow_new_time_proposal)),
    ),
    ("calendar:IsOnlineMeeting", lambda i, c: _text("IsOnlineMeeting", "false")),
]

KNOWN_FIELDS = {uri for uri, _ in ITEM_FIELDS}
DEFAULT_FIELDS = {
    "item:Subject",
    "item:HasAttachments",
    "item:IsAssociated",
    "calendar:Start",
    "calendar:End",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:CalendarItemType",
    "calendar:Organizer",
}


def _ext_uri_xml(attrs: dict[str, str]) -> str:
    parts = "".join(f" {name}={attr(attrs[name])}" for name in EXT_ATTRS if name in attrs)
    return f"<t:ExtendedFieldURI{parts}/>"


def _extended_xml(item: CalendarItem, shape: Shape) -> str | None:
    out = []
    for wanted in shape.extended:
        found = item.extended.get(ext_key(wanted))
        if found is None:
            continue
        if isinstance(found.value, list):
            values = "".join(_text("Value", v) for v in found.value)
            out.append(f"<t:ExtendedProperty>{_ext_uri_xml(wanted)}<t:Values>{values}</t:Values></t:ExtendedProperty>")
        else:
            out.append(f"<t:ExtendedProperty>{_ext_uri_xml(wanted)}{_text('Value', found.value)}</t:ExtendedProperty>")
    return "".join(out) or None


def item_xml(item: CalendarItem, ctx: Ctx) -> str:
    parts = [f"<t:ItemId Id={attr(item.item_id)} ChangeKey={attr(item.change_key)}/>"]
    for uri, writer in ITEM_FIELDS:
        if uri == "item:ExtendedProperty":
            if ctx.shape.extended:
                value = writer(item, ctx)
                if value:
                    parts.append(value)
            continue
        if ctx.shape.wants(uri):
            value = writer(item, ctx)
            if value is not None:
                parts.append(value)
    return f"<t:CalendarItem>{''.join(parts)}</t:CalendarItem>"


def id_only_xml(item: CalendarItem) -> str:
    return f"<t:CalendarItem><t:ItemId Id={attr(item.item_id)} ChangeKey={attr(item.change_key)}/></t:CalendarItem>"


# --- reading fields from a request ------------------------------------------------------------------


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


def apply_element(item: CalendarItem, elem: etree._Element, zone: tzinfo | None) -> None:
    """Set one property from a request's CalendarItem child element."""
    name = local(elem)
    text = elem.text or ""
    if name == "Subject":
        item.subject = text
    elif name == "Body":
        item.body, item.body_type = text, elem.get("BodyType", "Text")
    elif name == "Sensitivity":
        item.sensitivity = text
    elif name == "Importance":
        item.importance = text
    elif name == "Categories":
        item.categories = [s.text or "" for s in elem]
    elif name == "ReminderIsSet":
        item.reminder_is_set = parse_bool(text)
    elif name == "ReminderMinutesBeforeStart":
        item.reminder_minutes = int(text)
    elif name in ("Start", "End"):
        setattr(item, name.lower(), parse_dt(text, zone))
    elif name == "IsAllDayEvent":
        item.is_all_day = parse_bool(text)
    elif name == "LegacyFreeBusyStatus":
        item.free_busy = text
    elif name == "Location":
        item.location = text
    elif name == "IsResponseRequested":
        item.is_response_requested = parse_bool(text)
    elif name == "AllowNewTimeProposal":
        item.allow_new_time_proposal = parse_bool(text)
    elif name == "RequiredAttendees":
        item.required = _merge_answers(item.required, _attendees(elem))
    elif name == "OptionalAttendees":
        item.optional = _merge_answers(item.optional, _attendees(elem))
    elif name == "Resources":
        item.resources = _merge_answers(item.resources, _attendees(elem))
    elif name == "StartTimeZone":
        item.start_tz = elem.get("Id")
    elif name == "EndTimeZone":
        item.end_tz = elem.get("Id")
    elif name == "UID":
        item.uid = text
    elif name == "ExtendedProperty":
        value = _parse_extended(elem)
        item.extended[ext_key(value.attrs)] = value
    # Other settable properties (ItemClass, Culture, MeetingTimeZone, ...) change nothing the simulator reports.


def _merge_answers(old: list[Attendee], new: list[Attendee]) -> list[Attendee]:
    """Keep the answers of attendees who stay on the list."""
    previous = {a.email.lower(): a for a in old}
    for person in new:
        kept = previous.get(person.email.lower())
        if kept is not None:
            person.response, person.last_response_time = kept.response, kept.last_response_time
    return new


DELETABLE_DEFAULTS: dict[str, Callable[[CalendarItem], None]] = {
    "item:Body": lambda i: setattr(i, "body", ""),
    "item:Categories": lambda i: setattr(i, "categories", []),
    "calendar:Location": lambda i: setattr(i, "location", None),
    "calendar:RequiredAttendees": lambda i: setattr(i, "required", []),
    "calendar:OptionalAttendees": lambda i: setattr(i, "optional", []),
    "calendar:Resources": lambda i: setattr(i, "resources", []),
    "item:ReminderMinutesBeforeStart": lambda i: setattr(i, "reminder_minutes", 15),
    "calendar:StartTimeZone": lambda i: setattr(i, "start_tz", None),
    "calendar:EndTimeZone": lambda i: setattr(i, "end_tz", None),
    "calendar:MeetingTimeZone": lambda i: None,
    "item:Sensitivity": lambda i: setattr(i, "sensitivity", "Normal"),
    "item:Importance": lambda i: setattr(i, "importance", "Normal"),
}


def check_times(item: CalendarItem) -> None:
    if item.end < item.start:
        raise FieldError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


def field_value(item: CalendarItem, uri: str) -> object:
    """A property's value for restrictions and sorting, or None when unset."""
    getter = FIELD_GETTERS.get(uri)
    return getter(item) if getter else None


FIELD_GETTERS: dict[str, Callable[[CalendarItem], object]] = {
    "item:Subject": lambda i: i.subject,
    "item:Body": lambda i: i.body,
    "item:ItemClass": lambda i: "IPM.Appointment",
    "item:Sensitivity": lambda i: i.sensitivity,
    "item:Importance": lambda i: i.importance,
    "item:DateTimeCreated": lambda i: i.created,
    "item:DateTimeReceived": lambda i: i.created,
    "item:LastModifiedTime": lambda i: i.modified,
    "item:Categories": lambda i: i.categories or None,
    "calendar:UID": lambda i: i.uid,
    "calendar:Start": lambda i: i.start,
    "calendar:End": lambda i: i.end,
    "calendar:IsAllDayEvent": lambda i: i.is_all_day,
    "calendar:LegacyFreeBusyStatus": lambda i: i.free_busy,
    "calendar:Location": lambda i: i.location,
    "calendar:IsMeeting": lambda i: i.is_meeting,
    "calendar:IsCancelled": lambda i: i.is_cancelled,
    "calendar:MyResponseType": lambda i: i.my_response,
    "calendar:Organizer": lambda i: i.organizer.email if i.organizer else None,
}


def parse_constant(uri: str, text: str, zone: tzinfo | None) -> object:
    """A restriction's constant, typed like the property it is compared with."""
    sample = FIELD_TYPES.get(uri, str)
    if sample is datetime:
        return parse_dt(text, zone)
    if sample is bool:
        return parse_bool(text)
    return text


FIELD_TYPES: dict[str, type] = {
    "item:DateTimeCreated": datetime,
    "item:DateTimeReceived": datetime,
    "item:LastModifiedTime": datetime,
    "calendar:Start": datetime,
    "calendar:End": datetime,
    "calendar:IsAllDayEvent": bool,
    "calendar:IsMeeting": bool,
    "calendar:IsCancelled": bool,
}


def iter_children(elem: etree._Element) -> Iterable[etree._Element]:
    return (c for c in elem if isinstance(c.tag, str))
