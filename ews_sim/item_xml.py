"""CalendarItem fields written in the schema's order, for the properties a request's shape asks for.

A recurring master carries its pattern, first and last occurrences and its modified and deleted
occurrences; an occurrence or exception carries ``RecurrenceId`` and ``OriginalStart``.
``IsRecurring`` follows Microsoft's table: false on the organizer's master (a documented Exchange
quirk), true on an attendee's master and on every occurrence and exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from ews_sim import series
from ews_sim.store import EXT_ATTRS, Attendee, CalendarItem, ext_key
from ews_sim.xmlutil import attr, child_text, esc, fmt_bool, fmt_dt, local, tq


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


def _optional(tag: str, value: str | None) -> str | None:
    return _text(tag, value) if value is not None else None


def _optional_dt(tag: str, value: datetime | None) -> str | None:
    return _text(tag, fmt_dt(value)) if value is not None else None


def _is_recurring(item: CalendarItem) -> bool:
    if item.instance_kind is not None:
        return True
    return item.recurrence is not None and not item.is_organizer_copy


def _occurrence_xml(tag: str, item: CalendarItem) -> str:
    return (
        f"<t:{tag}><t:ItemId Id={attr(item.item_id)} ChangeKey={attr(item.change_key)}/>"
        f"{_text('Start', fmt_dt(item.start))}{_text('End', fmt_dt(item.end))}"
        f"{_text('OriginalStart', fmt_dt(item.original_start or item.start))}</t:{tag}>"
    )


def _edge_occurrence(item: CalendarItem, first: bool) -> str | None:
    if item.recurrence is None:
        return None
    found = series.first_and_last(item)[0 if first else 1]
    return _occurrence_xml("FirstOccurrence" if first else "LastOccurrence", found) if found is not None else None


def _modified_xml(item: CalendarItem) -> str | None:
    if not item.exceptions:
        return None
    inner = "".join(_occurrence_xml("Occurrence", item.exceptions[k]) for k in sorted(item.exceptions))
    return f"<t:ModifiedOccurrences>{inner}</t:ModifiedOccurrences>"


def _deleted_xml(item: CalendarItem) -> str | None:
    if not item.deleted_occurrences:
        return None
    inner = "".join(
        f"<t:DeletedOccurrence>{_text('Start', fmt_dt(d))}</t:DeletedOccurrence>"
        for d in sorted(item.deleted_occurrences)
    )
    return f"<t:DeletedOccurrences>{inner}</t:DeletedOccurrences>"


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
    ("item:InReplyTo", lambda i, c: _optional("InReplyTo", i.in_reply_to)),
    ("item:IsSubmitted", lambda i, c: _text("IsSubmitted", "false")),
    ("item:IsDraft", lambda i, c: _text("IsDraft", "false")),
    ("item:IsFromMe", lambda i, c: _text("IsFromMe", "false")),
    ("item:IsResend", lambda i, c: _text("IsResend", "false")),
    ("item:IsUnmodified", lambda i, c: _text("IsUnmodified", "false")),
    ("item:DateTimeSent", lambda i, c: _text("DateTimeSent", fmt_dt(i.created))),
    ("item:DateTimeCreated", lambda i, c: _text("DateTimeCreated", fmt_dt(i.created))),
    ("item:ReminderDueBy", lambda i, c: _text("ReminderDueBy", fmt_dt(i.reminder_due_by or i.start))),
    ("item:ReminderIsSet", lambda i, c: _text("ReminderIsSet", fmt_bool(i.reminder_is_set))),
    (
        "item:ReminderMinutesBeforeStart",
        lambda i, c: _text("ReminderMinutesBeforeStart", str(i.reminder_minutes)),
    ),
    ("item:DisplayCc", lambda i, c: _text("DisplayCc", "; ".join(a.name or a.email for a in i.optional))),
    ("item:DisplayTo", lambda i, c: _text("DisplayTo", "; ".join(a.name or a.email for a in i.required))),
    ("item:HasAttachments", lambda i, c: _text("HasAttachments", "false")),
    ("item:ExtendedProperty", lambda i, c: _extended_xml(i, c.shape)),
    ("item:Culture", lambda i, c: _text("Culture", i.culture)),
    ("item:LastModifiedName", lambda i, c: _text("LastModifiedName", i.mailbox)),
    ("item:LastModifiedTime", lambda i, c: _text("LastModifiedTime", fmt_dt(i.modified))),
    ("item:IsAssociated", lambda i, c: _text("IsAssociated", "false")),
    ("calendar:UID", lambda i, c: _text("UID", i.uid)),
    ("calendar:RecurrenceId", lambda i, c: _optional_dt("RecurrenceId", i.original_start)),
    ("calendar:DateTimeStamp", lambda i, c: _text("DateTimeStamp", fmt_dt(i.modified))),
    ("calendar:Start", lambda i, c: _text("Start", fmt_dt(i.start))),
    ("calendar:End", lambda i, c: _text("End", fmt_dt(i.end))),
    ("calendar:OriginalStart", lambda i, c: _optional_dt("OriginalStart", i.original_start)),
    ("calendar:IsAllDayEvent", lambda i, c: _text("IsAllDayEvent", fmt_bool(i.is_all_day))),
    ("calendar:LegacyFreeBusyStatus", lambda i, c: _text("LegacyFreeBusyStatus", i.free_busy)),
    ("calendar:Location", lambda i, c: _optional("Location", i.location)),
    ("calendar:When", lambda i, c: _optional("When", i.when)),
    ("calendar:IsMeeting", lambda i, c: _text("IsMeeting", fmt_bool(i.is_meeting))),
    ("calendar:IsCancelled", lambda i, c: _text("IsCancelled", fmt_bool(i.is_cancelled))),
    ("calendar:IsRecurring", lambda i, c: _text("IsRecurring", fmt_bool(_is_recurring(i)))),
    (
        "calendar:MeetingRequestWasSent",
        lambda i, c: _text("MeetingRequestWasSent", fmt_bool(i.meeting_request_was_sent)),
    ),
    (
        "calendar:IsResponseRequested",
        lambda i, c: _text("IsResponseRequested", fmt_bool(i.is_response_requested)),
    ),
    ("calendar:CalendarItemType", lambda i, c: _text("CalendarItemType", i.calendar_item_type)),
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
    ("calendar:Recurrence", lambda i, c: i.recurrence.xml() if i.recurrence is not None else None),
    ("calendar:FirstOccurrence", lambda i, c: _edge_occurrence(i, first=True)),
    ("calendar:LastOccurrence", lambda i, c: _edge_occurrence(i, first=False)),
    ("calendar:ModifiedOccurrences", lambda i, c: _modified_xml(i)),
    ("calendar:DeletedOccurrences", lambda i, c: _deleted_xml(i)),
    ("calendar:StartTimeZone", lambda i, c: _tz_xml("StartTimeZone", i.start_tz)),
    ("calendar:EndTimeZone", lambda i, c: _tz_xml("EndTimeZone", i.end_tz)),
    ("calendar:ConferenceType", lambda i, c: _text("ConferenceType", str(i.conference_type))),
    (
        "calendar:AllowNewTimeProposal",
        lambda i, c: _text("AllowNewTimeProposal", fmt_bool(i.allow_new_time_proposal)),
    ),
    ("calendar:IsOnlineMeeting", lambda i, c: _text("IsOnlineMeeting", "false")),
    ("calendar:MeetingWorkspaceUrl", lambda i, c: _optional("MeetingWorkspaceUrl", i.meeting_workspace_url)),
    ("calendar:NetShowUrl", lambda i, c: _optional("NetShowUrl", i.net_show_url)),
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
