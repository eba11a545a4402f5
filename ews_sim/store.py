"""The organisation the simulator serves: mailboxes, service accounts and calendars.

Everything lives in memory and is touched only from the server's event loop, so no locks.
Times are stored in UTC, as Exchange does.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ews_sim.xmlutil import now

if TYPE_CHECKING:
    from ews_sim.recurrence import Recurrence

EXT_ATTRS = (
    "DistinguishedPropertySetId",
    "PropertySetId",
    "PropertyTag",
    "PropertyName",
    "PropertyId",
    "PropertyType",
)


# Exchange names some property sets; Graph (and MAPI) know them only by GUID, so the store keys them by GUID.
DISTINGUISHED_SETS = {
    "publicstrings": "00020329-0000-0000-c000-000000000046",
    "common": "00062008-0000-0000-c000-000000000046",
    "appointment": "00062002-0000-0000-c000-000000000046",
    "meeting": "6ed8da90-450b-101b-98da-00aa003f1305",
    "address": "00062004-0000-0000-c000-000000000046",
    "task": "00062003-0000-0000-c000-000000000046",
    "internetheaders": "00020386-0000-0000-c000-000000000046",
    "calendarassistant": "11000e07-b51b-40d6-af21-caa85edab1d0",
    "unifiedmessaging": "4442858e-a9e3-4e80-b900-317a210cc15b",
    "sharing": "00062040-0000-0000-c000-000000000046",
}


def ext_key(attrs: dict[str, str]) -> tuple[str, str]:
    """Identify an extended property the way the store does: set and name/id/tag, case-insensitive GUIDs."""
    if attrs.get("PropertyTag"):
        return ("tag", str(int(attrs["PropertyTag"], 0)))
    prop_set = (attrs.get("PropertySetId") or attrs.get("DistinguishedPropertySetId") or "").lower()
    prop_set = DISTINGUISHED_SETS.get(prop_set, prop_set)
    if attrs.get("PropertyName") is not None:
        return (prop_set, "name:" + attrs["PropertyName"])
    return (prop_set, "id:" + str(int(attrs.get("PropertyId") or "0", 0)))


def ext_label(attrs: dict[str, str]) -> str:
    """The control API's key for an extended property: ``<setid>:<name>``."""
    if attrs.get("PropertyTag"):
        return attrs["PropertyTag"]
    prop_set = attrs.get("PropertySetId") or attrs.get("DistinguishedPropertySetId") or ""
    name = attrs.get("PropertyName")
    return f"{prop_set}:{name if name is not None else attrs.get('PropertyId')}"


@dataclass
class ExtendedValue:
    attrs: dict[str, str]
    value: str | list[str]


@dataclass
class Attendee:
    email: str
    name: str = ""
    response: str = "Unknown"
    last_response_time: datetime | None = None


@dataclass
class CalendarItem:
    item_id: str
    mailbox: str
    uid: str
    start: datetime
    end: datetime
    subject: str = ""
    body: str = ""
    body_type: str = "Text"
    location: str | None = None
    free_busy: str = "Busy"
    is_all_day: bool = False
    sensitivity: str = "Normal"
    importance: str = "Normal"
    categories: list[str] = field(default_factory=list)
    reminder_is_set: bool = True
    reminder_minutes: int = 15
    is_meeting: bool = False
    is_cancelled: bool = False
    meeting_request_was_sent: bool = False
    is_response_requested: bool = True
    allow_new_time_proposal: bool = True
    my_response: str = "Organizer"
    organizer: Attendee | None = None
    required: list[Attendee] = field(default_factory=list)
    optional: list[Attendee] = field(default_factory=list)
    resources: list[Attendee] = field(default_factory=list)
    start_tz: str | None = None
    end_tz: str | None = None
    extended: dict[tuple[str, str], ExtendedValue] = field(default_factory=dict)
    created: datetime = field(default_factory=now)
    modified: datetime = field(default_factory=now)
    change_no: int = 1
    sequence: int = 0
    # An attendee's copy points at the organizer's item so answers and updates can flow between them.
    organizer_item_id: str | None = None
    # Set through Microsoft Graph only (EWS does not see them): the client's create deduplication key and
    # the Teams meeting attached to the event.
    transaction_id: str | None = None
    is_online_meeting: bool = False
    online_meeting_provider: str = "unknown"
    join_url: str | None = None
    # Stored and returned as sent; Exchange gives them no behaviour a calendar client sees.
    in_reply_to: str | None = None
    when: str | None = None
    meeting_workspace_url: str | None = None
    net_show_url: str | None = None
    culture: str = "en-US"
    conference_type: int = 0
    reminder_due_by: datetime | None = None  # None: the start, as Exchange sets it
    # A recurring series (ews_sim.series): the master holds the pattern, its modified occurrences (exceptions,
    # keyed by their original start in UTC) and the original starts of its deleted occurrences.
    recurrence: Recurrence | None = None
    exceptions: dict[datetime, CalendarItem] = field(default_factory=dict)
    deleted_occurrences: set[datetime] = field(default_factory=set)
    # Set on the instances of a series handed out by ews_sim.series: Occurrence or Exception, their master and
    # the start the pattern gave them.
    instance_kind: str | None = None
    master_id: str | None = None
    original_start: datetime | None = None

    @property
    def change_key(self) -> str:
        return base64.b64encode(f"CK{self.change_no:08d}{self.item_id[-12:]}".encode()).decode()

    def touch(self) -> None:
        self.change_no += 1
        self.modified = now()

    def attendees(self) -> list[Attendee]:
        return [*self.required, *self.optional, *self.resources]

    @property
    def is_organizer_copy(self) -> bool:
        return self.organizer_item_id is None

    @property
    def calendar_item_type(self) -> str:
        """EWS's CalendarItemType: Single, RecurringMaster, Occurrence or Exception."""
        if self.instance_kind is not None:
            return self.instance_kind
        return "RecurringMaster" if self.recurrence is not None else "Single"

    @property
    def is_recurring(self) -> bool:
        return self.recurrence is not None or self.instance_kind is not None


@dataclass
class SentMessage:
    """A meeting request, update or cancellation the organizer's mailbox sent to one attendee."""

    seq: int
    kind: str  # request, update, cancel
    to: str
    organizer: str
    organizer_item_id: str
    uid: str
    subject: str
    start: datetime
    end: datetime
    extended: dict[str, str | list[str]]
    sent: datetime = field(default_factory=now)


# MailItem.element -> its item class (a meeting response's depends on the answer).
MAIL_CLASSES = {
    "MeetingRequest": "IPM.Schedule.Meeting.Request",
    "MeetingCancellation": "IPM.Schedule.Meeting.Canceled",
    "Accept": "IPM.Schedule.Meeting.Resp.Pos",
    "Tentative": "IPM.Schedule.Meeting.Resp.Tent",
    "Decline": "IPM.Schedule.Meeting.Resp.Neg",
}
MAIL_FOLDERS = ("inbox", "sentitems", "deleteditems")


@dataclass
class MailItem:
    """A meeting message in a mail folder: a request or cancellation an attendee received, an answer the organizer
    received, or the sender's copy of either in Sent Items."""

    item_id: str
    mailbox: str
    element: str  # MeetingRequest, MeetingResponse or MeetingCancellation
    subject: str
    sender: str
    to: list[str]
    uid: str = ""
    response_type: str = "Unknown"  # a response's answer: Accept, Tentative or Decline
    start: datetime | None = None
    end: datetime | None = None
    location: str | None = None
    body: str = ""
    associated_item_id: str | None = None  # the calendar item it is about, in the holder's mailbox
    is_draft: bool = False
    created: datetime = field(default_factory=now)
    modified: datetime = field(default_factory=now)
    change_no: int = 1

    @property
    def change_key(self) -> str:
        return base64.b64encode(f"MK{self.change_no:08d}{self.item_id[-12:]}".encode()).decode()

    @property
    def item_class(self) -> str:
        key = self.response_type if self.element == "MeetingResponse" else self.element
        return MAIL_CLASSES.get(key, "IPM.Note")


@dataclass
class ServiceAccount:
    username: str
    password: str
    impersonate: set[str] = field(default_factory=set)  # lower-cased addresses, or {"*"}

    def may_impersonate(self, email: str) -> bool:
        return "*" in self.impersonate or email.lower() in self.impersonate


_ids = itertools.count(1)


def new_item_id() -> str:
    # Real ids are opaque base64 blobs of about 150 characters; the length keeps clients from assuming short ids.
    raw = b"\x00\x00\x00\x00" + uuid.uuid4().bytes + next(_ids).to_bytes(8, "big") + b"\x00" * 40
    return base64.b64encode(raw).decode()


class Organisation:
    def __init__(self) -> None:
        self.mailboxes: set[str] = set()
        self.aliases: dict[str, str] = {}  # another address of a mailbox -> its primary address
        self.domains: set[str] = set()
        self.accounts: dict[str, ServiceAccount] = {}
        self.calendars: dict[str, dict[str, CalendarItem]] = {}
        # Mail folders (MAIL_FOLDERS) per mailbox: meeting messages, and calendar items moved to Deleted Items.
        self.folders: dict[str, dict[str, dict[str, MailItem | CalendarItem]]] = {}
        self.messages: list[SentMessage] = []
        self.max_concurrency = 27

    def reset_data(self) -> None:
        self.calendars.clear()
        self.folders.clear()
        self.messages.clear()

    def add_mailboxes(self, emails: list[str]) -> None:
        self.mailboxes.update(e.strip().lower() for e in emails)

    def add_account(self, username: str, password: str, impersonate: list[str]) -> None:
        self.accounts[username.lower()] = ServiceAccount(
            username=username, password=password, impersonate={i.lower() for i in impersonate}
        )

    def add_aliases(self, aliases: dict[str, list[str]]) -> None:
        """More addresses for mailboxes (``{"bob@x.com": ["robert@x.com"]}``); the primary becomes a mailbox."""
        for primary, others in aliases.items():
            main = primary.strip().lower()
            self.mailboxes.add(main)
            for other in others:
                self.aliases[other.strip().lower()] = main

    def primary(self, email: str) -> str:
        """The mailbox's primary address for any of its addresses (lower-cased); other addresses as they are."""
        email = email.strip().lower()
        return self.aliases.get(email, email)

    def addresses(self, email: str) -> list[str]:
        """Every address of the mailbox ``email`` names: the primary first."""
        main = self.primary(email)
        return [main, *sorted(a for a, p in self.aliases.items() if p == main)]

    def may_impersonate(self, account: ServiceAccount, email: str) -> bool:
        """Whether the account may act as the mailbox, whichever of its addresses either side names."""
        if "*" in account.impersonate:
            return True
        main = self.primary(email)
        return any(self.primary(allowed) == main for allowed in account.impersonate)

    def is_mailbox(self, email: str) -> bool:
        email = self.primary(email)
        if email in self.mailboxes:
            return True
        _, _, domain = email.rpartition("@")
        return bool(domain) and domain in self.domains

    def calendar(self, email: str) -> dict[str, CalendarItem]:
        return self.calendars.setdefault(self.primary(email), {})

    def item(self, mailbox: str, item_id: str) -> CalendarItem | None:
        return self.calendars.get(self.primary(mailbox), {}).get(item_id)

    def find_by_uid(self, mailbox: str, uid: str) -> CalendarItem | None:
        for item in self.calendars.get(self.primary(mailbox), {}).values():
            if item.uid == uid:
                return item
        return None

    def add_item(self, item: CalendarItem) -> CalendarItem:
        self.calendar(item.mailbox)[item.item_id] = item
        return item

    def remove_item(self, item: CalendarItem) -> None:
        self.calendar(item.mailbox).pop(item.item_id, None)

    def folder(self, mailbox: str, kind: str) -> dict[str, MailItem | CalendarItem]:
        return self.folders.setdefault(self.primary(mailbox), {}).setdefault(kind, {})

    def file(self, kind: str, item: MailItem | CalendarItem) -> None:
        """Put an item in one of a mailbox's mail folders (a deleted calendar item in Deleted Items)."""
        self.folder(item.mailbox, kind)[item.item_id] = item

    def filed(self, mailbox: str, item_id: str) -> tuple[str, MailItem | CalendarItem] | None:
        """The mail folder holding an item, and the item."""
        for kind, items in self.folders.get(self.primary(mailbox), {}).items():
            found = items.get(item_id)
            if found is not None:
                return kind, found
        return None

    def unfile(self, mailbox: str, item_id: str) -> None:
        for items in self.folders.get(self.primary(mailbox), {}).values():
            items.pop(item_id, None)
