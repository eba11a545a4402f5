"""Meeting messages (requests, responses, cancellations) written in the schema's order, and any item by its kind.

Only what a calendar client reads is kept: who sent it to whom, the subject, the meeting's UID,
times and location, the answer a response carries and the calendar item a message is about.
"""

from __future__ import annotations

from collections.abc import Callable

from ews_sim.item_xml import Ctx, item_xml
from ews_sim.store import CalendarItem, MailItem
from ews_sim.xmlutil import attr, esc, fmt_bool, fmt_dt

Writer = Callable[[MailItem, Ctx], "str | None"]


def _text(tag: str, value: str) -> str:
    return f"<t:{tag}>{esc(value)}</t:{tag}>"


def _box(email: str) -> str:
    return (
        f"<t:Mailbox>{_text('Name', email)}{_text('EmailAddress', email)}<t:RoutingType>SMTP</t:RoutingType>"
        "<t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>"
    )


def _when(tag: str, value: object) -> str | None:
    return _text(tag, fmt_dt(value)) if value is not None else None  # type: ignore[arg-type]


_COMMON: list[tuple[str, Writer]] = [
    ("item:ParentFolderId", lambda m, c: f'<t:ParentFolderId Id={attr(c.folder_id)} ChangeKey="AQAAAA=="/>'),
    ("item:ItemClass", lambda m, c: _text("ItemClass", m.item_class)),
    ("item:Subject", lambda m, c: _text("Subject", m.subject)),
    ("item:Sensitivity", lambda m, c: _text("Sensitivity", "Normal")),
    ("item:Body", lambda m, c: f'<t:Body BodyType="Text">{esc(m.body)}</t:Body>'),
    ("item:DateTimeReceived", lambda m, c: _text("DateTimeReceived", fmt_dt(m.created))),
    ("item:Size", lambda m, c: _text("Size", str(512 + len(m.subject.encode()) + len(m.body.encode())))),
    ("item:Importance", lambda m, c: _text("Importance", "Normal")),
    ("item:IsSubmitted", lambda m, c: _text("IsSubmitted", fmt_bool(not m.is_draft))),
    ("item:IsDraft", lambda m, c: _text("IsDraft", fmt_bool(m.is_draft))),
    ("item:IsFromMe", lambda m, c: _text("IsFromMe", fmt_bool(m.sender == m.mailbox))),
    ("item:DateTimeSent", lambda m, c: _text("DateTimeSent", fmt_dt(m.created))),
    ("item:DateTimeCreated", lambda m, c: _text("DateTimeCreated", fmt_dt(m.created))),
    ("item:DisplayTo", lambda m, c: _text("DisplayTo", "; ".join(m.to))),
    ("item:HasAttachments", lambda m, c: _text("HasAttachments", "false")),
    ("item:LastModifiedTime", lambda m, c: _text("LastModifiedTime", fmt_dt(m.modified))),
    ("message:Sender", lambda m, c: f"<t:Sender>{_box(m.sender)}</t:Sender>"),
    ("message:ToRecipients", lambda m, c: "<t:ToRecipients>" + "".join(map(_box, m.to)) + "</t:ToRecipients>"),
    ("message:From", lambda m, c: f"<t:From>{_box(m.sender)}</t:From>"),
    ("message:IsRead", lambda m, c: _text("IsRead", fmt_bool(m.sender == m.mailbox))),
    (
        "meeting:AssociatedCalendarItemId",
        lambda m, c: f"<t:AssociatedCalendarItemId Id={attr(m.associated_item_id)}/>" if m.associated_item_id else None,
    ),
    ("meeting:ResponseType", lambda m, c: _text("ResponseType", m.response_type)),
    ("calendar:UID", lambda m, c: _text("UID", m.uid) if m.uid else None),
]
_REQUEST: list[tuple[str, Writer]] = [
    ("meetingRequest:MeetingRequestType", lambda m, c: _text("MeetingRequestType", "NewMeetingRequest")),
    ("meetingRequest:IntendedFreeBusyStatus", lambda m, c: _text("IntendedFreeBusyStatus", "Busy")),
    ("calendar:Start", lambda m, c: _when("Start", m.start)),
    ("calendar:End", lambda m, c: _when("End", m.end)),
    ("calendar:Location", lambda m, c: _text("Location", m.location) if m.location is not None else None),
]
_OTHER: list[tuple[str, Writer]] = [
    ("calendar:Start", lambda m, c: _when("Start", m.start)),
    ("calendar:End", lambda m, c: _when("End", m.end)),
    ("calendar:Location", lambda m, c: _text("Location", m.location) if m.location is not None else None),
]


def mail_xml(item: MailItem, ctx: Ctx) -> str:
    parts = [f"<t:ItemId Id={attr(item.item_id)} ChangeKey={attr(item.change_key)}/>"]
    for uri, writer in _COMMON + (_REQUEST if item.element == "MeetingRequest" else _OTHER):
        if ctx.shape.wants(uri) or (ctx.shape.base == "Default" and uri in ("item:ItemClass", "message:From")):
            value = writer(item, ctx)
            if value is not None:
                parts.append(value)
    return f"<t:{item.element}>{''.join(parts)}</t:{item.element}>"


def any_item_xml(item: MailItem | CalendarItem, ctx: Ctx) -> str:
    return mail_xml(item, ctx) if isinstance(item, MailItem) else item_xml(item, ctx)


def any_id_only_xml(item: MailItem | CalendarItem) -> str:
    tag = item.element if isinstance(item, MailItem) else "CalendarItem"
    return f"<t:{tag}><t:ItemId Id={attr(item.item_id)} ChangeKey={attr(item.change_key)}/></t:{tag}>"
