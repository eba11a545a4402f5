"""The two requests every placement makes (FindItem by the tag, CreateItem of the item), written as XML directly.

exchangelib still sends them: its session pool, impersonation, the typed errors it raises from the answer
(``ErrorServerBusy`` with its back-off) and its reading of the answer. Only the request body skips its object model,
which built and validated a ``CalendarItem`` and a ``Restriction`` field by field: a third of the CPU the two calls
cost. The bodies are the ones exchangelib writes for the same arguments, element for element
(tests/downsync/backends/ews/test_wire.py compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from exchangelib.services import CreateItem, FindItem
from exchangelib.util import safe_xml_value
from lxml import etree

from downsync.backends.ews.items import PROPERTY_SET, xml_text
from downsync.core.model import Appointment, Meeting, Tag

M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"
_NS = {"m": M[1:-1], "t": T[1:-1]}
_SUB = etree.SubElement


def _element(tag: str, attrs: dict[str, str] | None = None, text: str | None = None) -> Any:
    element = etree.Element(tag, attrs or {}, nsmap=_NS)
    element.text = text
    return element


def _child(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    element = _SUB(parent, tag, attrs)
    element.text = text
    return element


def _property(parent: Any, name: str) -> Any:
    return _SUB(
        parent,
        f"{T}ExtendedFieldURI",
        {"PropertySetId": PROPERTY_SET, "PropertyName": name, "PropertyType": "String"},
    )


def _calendar(parent: Any, mailbox: str) -> None:
    folder = _child(parent, f"{T}DistinguishedFolderId", Id="calendar")
    box = _child(folder, f"{T}Mailbox")
    _child(box, f"{T}EmailAddress", mailbox)
    _child(box, f"{T}RoutingType", "SMTP")
    _child(box, f"{T}MailboxType", "Mailbox")


def _text(value: str | None) -> str | None:
    # What leaves exchangelib for a string field: characters XML cannot carry dropped (as downsync always wrote them),
    # then exchangelib's own replacement of the control characters it refuses.
    return safe_xml_value(xml_text(value)) if value is not None else None


def _tagged(value: str) -> str:
    return str(safe_xml_value(value))


def _equal(parent: Any, name: str, value: str) -> None:
    equal = _child(parent, f"{T}IsEqualTo")
    _property(equal, name)
    _child(_child(equal, f"{T}FieldURIOrConstant"), f"{T}Constant", Value=value)


def find_payload(mailbox: str, tag: Tag, page_size: int, offset: int) -> Any:
    """This tenant's and untagged-by-tenant items of one event and kind, with the tag's properties and the UID."""
    find = _element(f"{M}FindItem", {"Traversal": "Shallow"})
    shape = _child(find, f"{M}ItemShape")
    _child(shape, f"{T}BaseShape", "IdOnly")
    extra = _child(shape, f"{T}AdditionalProperties")
    for name in ("DownsyncEventId", "DownsyncFingerprint", "DownsyncTenant"):
        _property(extra, name)
    _child(extra, f"{T}FieldURI", FieldURI="calendar:UID")
    _child(
        find, f"{M}IndexedPageItemView", MaxEntriesReturned=str(page_size), Offset=str(offset), BasePoint="Beginning"
    )
    both = _child(_child(find, f"{M}Restriction"), f"{T}And")
    event = _child(both, f"{T}And")
    _equal(event, "DownsyncEventId", _tagged(tag.event_id))
    _equal(event, "DownsyncKind", _tagged(tag.kind))
    tenant = _child(both, f"{T}Or")
    _property(_child(_child(tenant, f"{T}Not"), f"{T}Exists"), "DownsyncTenant")
    _equal(tenant, "DownsyncTenant", _tagged(tag.tenant))
    _calendar(_child(find, f"{M}ParentFolderIds"), mailbox)
    return find


def _time(state: Appointment | Meeting, which: str) -> str:
    return str(getattr(state, which).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


@dataclass(frozen=True)
class NewItem:
    """A plain calendar item to create: the state's content, Busy, tagged, with the fingerprint unless a draft."""

    tag: Tag
    state: Appointment | Meeting
    fingerprint: str | None


def create_payload(mailbox: str, items: Sequence[NewItem]) -> Any:
    create = _element(f"{M}CreateItem", {"MessageDisposition": "SaveOnly", "SendMeetingInvitations": "SendToNone"})
    _calendar(_child(create, f"{M}SavedItemFolderId"), mailbox)
    listed = _child(create, f"{M}Items")
    for new in items:
        state, tag = new.state, new.tag
        item = _child(listed, f"{T}CalendarItem")
        subject = _text(state.subject)
        if subject is not None:
            _child(item, f"{T}Subject", subject)
        _child(item, f"{T}Sensitivity", "Normal")
        body = _text(state.body)
        if body is not None:
            _child(item, f"{T}Body", body, BodyType="Text")
        _child(item, f"{T}Importance", "Normal")
        _child(item, f"{T}ReminderIsSet", "0")
        _child(item, f"{T}ReminderMinutesBeforeStart", "0")
        for name, value in (
            ("DownsyncTenant", tag.tenant),
            ("DownsyncFingerprint", new.fingerprint),
            ("DownsyncKind", tag.kind),
            ("DownsyncEventId", tag.event_id),
        ):
            if value is not None:
                prop = _child(item, f"{T}ExtendedProperty")
                _property(prop, name)
                _child(prop, f"{T}Value", _tagged(value))
        _child(item, f"{T}Start", _time(state, "start"))
        _child(item, f"{T}End", _time(state, "end"))
        _child(item, f"{T}IsAllDayEvent", "0")
        _child(item, f"{T}LegacyFreeBusyStatus", "Busy")
        location = _text(state.location)
        if location is not None:
            _child(item, f"{T}Location", location)
        _child(item, f"{T}StartTimeZone", Id="UTC")
        _child(item, f"{T}EndTimeZone", Id="UTC")
    return create


class FindTaggedItems(FindItem):
    """FindItem whose body is ``find_payload``; exchangelib pages and reads the answer as for its own."""

    def __init__(self, *args: Any, tag: Tag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag

    def get_payload(self, folders: Any, page_size: int, offset: int = 0, **kwargs: Any) -> Any:
        return find_payload(self.account.primary_smtp_address, self.tag, page_size, offset)


class CreateItems(CreateItem):
    """CreateItem whose body is ``create_payload``; exchangelib reads the new items' ids and change keys."""

    def get_payload(self, items: Sequence[NewItem], folder: Any, **kwargs: Any) -> Any:
        return create_payload(self.account.primary_smtp_address, items)
