"""What every operation shares: the request context, faults, folder and mailbox resolution."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import ClassVar

from lxml import etree

from ews_sim import responses, series
from ews_sim.folders import FOLDERS, folder_id
from ews_sim.store import CalendarItem, MailItem, Organisation, ServiceAccount
from ews_sim.xmlutil import child_text, local, mq, tq

__all__ = [
    "Context",
    "MessageError",
    "Operation",
    "SoapFault",
    "find_any",
    "find_item",
    "first_folder",
    "folder_id",
    "items_container",
    "resolve_folder",
]


class SoapFault(Exception):
    """A request-level error, sent as a SOAP fault with HTTP 500 as Exchange does."""

    def __init__(self, code: str, text: str | None = None, values: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.text = text
        self.values = values or {}

    def body(self) -> str:
        return responses.fault(self.code, self.text, self.values)


class MessageError(Exception):
    """An error for one element of a request, reported in that element's response message."""

    def __init__(self, code: str, text: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.text = text


@dataclass
class Context:
    org: Organisation
    account: ServiceAccount
    mailbox: str | None
    zone: tzinfo | None
    zone_id: str | None = None  # the TimeZoneContext's Windows id
    # Codes injected for single mailboxes of a multi-mailbox request (availability).
    mailbox_faults: dict[str, str] = field(default_factory=dict)

    def acting_mailbox(self) -> str:
        if self.mailbox is None:
            # Without impersonation the service account acts on its own mailbox, if it has one.
            own = self.org.primary(self.account.username)
            if not self.org.is_mailbox(own):
                raise SoapFault("ErrorNonExistentMailbox", values={"SmtpAddress": own})
            return own
        return self.mailbox


def parse_folder_id(value: str) -> tuple[str, str]:
    try:
        prefix, kind, mailbox = base64.b64decode(value, validate=True).decode().split(":", 2)
    except Exception as exc:
        raise MessageError("ErrorInvalidIdMalformed", "Id is malformed.") from exc
    if prefix != "AAMk":
        raise MessageError("ErrorInvalidIdMalformed", "Id is malformed.")
    return kind, mailbox


def resolve_folder(ctx: Context, elem: etree._Element) -> tuple[str, str]:
    """A folder reference as (distinguished kind, mailbox) after checking the caller may use it."""
    if local(elem) == "DistinguishedFolderId":
        kind = elem.get("Id", "")
        box = elem.find(tq("Mailbox"))
        address = (child_text(box, "EmailAddress") or "").strip().lower() if box is not None else ""
        mailbox = ctx.org.primary(address) if address else ctx.acting_mailbox()
    else:
        kind, mailbox = parse_folder_id(elem.get("Id", ""))
    own = ctx.org.primary(ctx.account.username)
    if mailbox != ctx.mailbox and mailbox != own:
        if not ctx.org.is_mailbox(mailbox):
            raise MessageError("ErrorNonExistentMailbox", f"The SMTP address {mailbox} has no mailbox.")
        if not ctx.org.may_impersonate(ctx.account, mailbox) or ctx.mailbox not in (None, mailbox):
            raise MessageError("ErrorAccessDenied")
    if kind not in FOLDERS:
        raise MessageError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
    return kind, mailbox


def first_folder(ctx: Context, container: etree._Element | None) -> tuple[str, str]:
    if container is None or not len(container):
        return "calendar", ctx.acting_mailbox()
    return resolve_folder(ctx, container[0])


class Operation:
    name: ClassVar[str]
    needs_mailbox: ClassVar[bool] = True
    # What the schema requires after the common part of an error message (e.g. an empty Items).
    error_inner: ClassVar[str] = ""

    def count(self, elem: etree._Element) -> int:
        """How many response messages the request asks for (one per item, id or change)."""
        return 1

    def run(self, ctx: Context, elem: etree._Element) -> str:
        raise NotImplementedError

    def error_messages(self, elem: etree._Element, code: str, text: str | None = None) -> str:
        """The response when every element of the request fails with one code (used by fault injection)."""
        messages = [
            responses.message(self.name, code=code, text=text, inner=self.error_inner) for _ in range(self.count(elem))
        ]
        return responses.response(self.name, messages)


def items_container(elem: etree._Element, name: str) -> list[etree._Element]:
    found = elem.find(mq(name))
    return [c for c in found if isinstance(c.tag, str)] if found is not None else []


def find_item(ctx: Context, mailbox: str, ref: etree._Element) -> CalendarItem:
    """The item an ``ItemId``, ``OccurrenceItemId`` (a master and a 1-based index) or ``RecurringMasterItemId`` (an
    occurrence, meaning its master) names; an occurrence's own id is an ``ItemId`` like any other."""
    kind = local(ref)
    try:
        if kind == "OccurrenceItemId":
            master = ctx.org.item(mailbox, ref.get("RecurringMasterId", ""))
            if master is None:
                raise MessageError("ErrorItemNotFound")
            if master.recurrence is None:
                raise MessageError(
                    "ErrorCalendarCannotUseIdForOccurrenceId", "The Id of a non-recurring item cannot name occurrences."
                )
            return series.by_index(master, int(ref.get("InstanceIndex", "0")))
        if kind == "RecurringMasterItemId":
            found = series.resolve(ctx.org, mailbox, ref.get("OccurrenceId", ""))
            if found is None:
                raise MessageError("ErrorItemNotFound")
            master = series.master_of(ctx.org, mailbox, found)
            if master is None or (found.instance_kind is None and found.recurrence is None):
                raise MessageError(
                    "ErrorCalendarCannotUseIdForRecurringMasterId", "The Id is not the id of an occurrence."
                )
            return master
        found = series.resolve(ctx.org, mailbox, ref.get("Id", ""))
    except series.SeriesError as exc:
        raise MessageError(exc.code, exc.message) from exc
    if found is None:
        raise MessageError("ErrorItemNotFound")
    return found


def find_any(ctx: Context, mailbox: str, ref: etree._Element) -> tuple[str, CalendarItem | MailItem]:
    """Like ``find_item``, for items of every folder: (the folder's kind, the item)."""
    if local(ref) == "ItemId":
        filed = ctx.org.filed(mailbox, ref.get("Id", ""))
        if filed is not None:
            return filed
    return "calendar", find_item(ctx, mailbox, ref)
