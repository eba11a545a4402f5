"""The EWS implementation of ``CalendarGateway``: one small class per operation, as exchangelib's services are."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from exchangelib import Account, Attendee, CalendarItem, Mailbox
from exchangelib.errors import ErrorItemNotFound

from downsync.backends import OpenContext
from downsync.backends.ews import EwsOptions
from downsync.backends.ews.availability import EwsAvailability
from downsync.backends.ews.connection import Connection, account
from downsync.backends.ews.directory import resolve_address
from downsync.backends.ews.errors import raising
from downsync.backends.ews.items import (
    TAG_FIELDS,
    UPDATED,
    calendar,
    find_tagged,
    plain_time,
    tag_fields,
    written_fields,
)
from downsync.backends.ews.wire import CreateItems, NewItem
from downsync.core.model import (
    Appointment,
    AttendeeView,
    Found,
    FreeBusy,
    ItemRef,
    Meeting,
    MeetingView,
    Tag,
)
from downsync.core.throttle import AccountLimit

T = TypeVar("T")
SEND = "SendToAllAndSaveCopy"
# Exchange's ResponseType in the contract's words.
RESPONSES = {
    "Accept": "Accepted",
    "Decline": "Declined",
    "Tentative": "Tentative",
    "NoResponseReceived": "NoResponseReceived",
    "Organizer": "Organizer",
    "Unknown": "Unknown",
}


def _call(write: bool, action: Callable[[], T]) -> T:
    try:
        return action()
    except Exception as exc:
        error = raising(exc, write)
        if error is exc:
            raise
        raise error from exc


def _people(state: Meeting, required: bool) -> list[Attendee] | None:
    return [Attendee(mailbox=Mailbox(email_address=a.email)) for a in state.attendees if a.required is required] or None


class SaveItem:
    """Create (no ``ref``) or change (``ref``, fenced by its change key) one tagged item."""

    def __call__(
        self,
        acct: Account,
        tag: Tag,
        state: Appointment | Meeting,
        fingerprint: str | None,
        ref: ItemRef | None = None,
        attendees: bool = False,
        send: str = "SendToNone",
    ) -> ItemRef:
        if ref is None and not attendees and send == "SendToNone":
            # A plain item nobody hears of: its body written directly (wire.py), without exchangelib's item model.
            new = CreateItems(account=acct).get(
                items=[NewItem(tag, state, fingerprint)],
                folder=calendar(acct),
                message_disposition="SaveOnly",
                send_meeting_invitations="SendToNone",
            )
            return ItemRef(str(new.id), str(new.changekey))
        fields = {**written_fields(state, fingerprint), **tag_fields(tag)}
        if attendees:
            assert isinstance(state, Meeting)
            fields |= {"required_attendees": _people(state, True), "optional_attendees": _people(state, False)}
        if ref is None:
            item = CalendarItem(account=acct, folder=calendar(acct), **fields)
            item.save(send_meeting_invitations=send)
        else:
            item = CalendarItem(account=acct, folder=calendar(acct), id=ref.id, changekey=ref.change_key, **fields)
            extra = ["required_attendees", "optional_attendees"] if attendees else []
            # NeverOverwrite: a change based on a stale read fails (ErrorIrresolvableConflict) instead of winning.
            item.save(
                update_fields=UPDATED + TAG_FIELDS + extra,
                conflict_resolution="NeverOverwrite",
                send_meeting_invitations=send,
            )
        return ItemRef(str(item.id), str(item.changekey))


class DeleteItems:
    def __call__(self, acct: Account, refs: Sequence[ItemRef], cancellations: str) -> None:
        if not refs:
            return
        results = acct.bulk_delete(
            ids=[(r.id, r.change_key) for r in refs], delete_type="HardDelete", send_meeting_cancellations=cancellations
        )
        for result in results:
            # Already gone is what we wanted.
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise result


class ReadMeeting:
    FIELDS = ("subject", "body", "location", "start", "end", "required_attendees", "optional_attendees")

    def __call__(self, acct: Account, tag: Tag) -> MeetingView | None:
        found = [f for f in find_tagged(acct, calendar(acct), tag) if f.fingerprint is not None]
        if not found:
            return None
        chosen = min(found, key=lambda f: (f.tenant is None, f.ref.id))
        [item] = list(acct.fetch(ids=[(chosen.ref.id, chosen.ref.change_key)], only_fields=list(self.FIELDS)))
        if isinstance(item, Exception):
            raise item
        people = [(a, True) for a in item.required_attendees or []] + [
            (a, False) for a in item.optional_attendees or []
        ]
        return MeetingView(
            subject=item.subject or "",
            body=str(item.body or ""),
            location=item.location,
            start=plain_time(item.start),
            end=plain_time(item.end),
            attendees=tuple(
                AttendeeView(a.mailbox.email_address, required, RESPONSES.get(a.response_type or "Unknown", "Unknown"))
                for a, required in people
            ),
        )


save_item = SaveItem()
delete_items = DeleteItems()
read_meeting = ReadMeeting()


class EwsGateway:
    backend = "ews"

    def __init__(self, options: EwsOptions, context: OpenContext) -> None:
        settings = context.settings
        # exchangelib's session pool as large as the threads that may use it at once (it opens sessions as they are
        # needed): with 10 for a worker at --concurrency=16, six placements at a time waited for a session.
        self.connection = Connection.from_options(
            options,
            tenant_id=context.tenant_id,
            timeout=settings.exchange_timeout_seconds,
            max_connections=max(10, settings.availability_concurrency, context.calls_at_once),
        )
        self.availability = EwsAvailability(self.connection, settings.availability_concurrency)
        # Exchange counts concurrent requests per service account: every worker's calls share its limit.
        self.account = AccountLimit(f"ews:{options.url}|{options.username}".lower(), options.max_concurrency)

    def _account(self, mailbox: str) -> Account:
        return account(self.connection, mailbox)

    def find(self, mailbox: str, tag: Tag) -> list[Found]:
        return _call(False, lambda: find_tagged(self._account(mailbox), calendar(self._account(mailbox)), tag))

    def create_appointment(self, mailbox: str, tag: Tag, state: Appointment, key: str) -> ItemRef:
        return _call(True, lambda: save_item(self._account(mailbox), tag, state, state.fingerprint))

    def update_appointment(self, mailbox: str, ref: ItemRef, tag: Tag, state: Appointment) -> ItemRef:
        return _call(True, lambda: save_item(self._account(mailbox), tag, state, state.fingerprint, ref=ref))

    def remove(self, mailbox: str, refs: Sequence[ItemRef]) -> None:
        _call(True, lambda: delete_items(self._account(mailbox), refs, "SendToNone"))

    def create_meeting_draft(self, organizer: str, tag: Tag, state: Meeting, key: str) -> ItemRef:
        # No attendees and no fingerprint: a plain appointment nobody hears of until ``send_meeting``.
        return _call(True, lambda: save_item(self._account(organizer), tag, state, None))

    def send_meeting(self, organizer: str, ref: ItemRef, tag: Tag, state: Meeting) -> tuple[ItemRef, str | None]:
        # EWS has no online meetings: an "MS Teams" location stays text, as the contract says for EWS tenants.
        sent = _call(
            True,
            lambda: save_item(
                self._account(organizer), tag, state, state.fingerprint, ref=ref, attendees=True, send=SEND
            ),
        )
        return sent, None

    def cancel_meeting(self, organizer: str, refs: Sequence[ItemRef]) -> None:
        _call(True, lambda: delete_items(self._account(organizer), refs, SEND))

    def read_meeting(self, organizer: str, tag: Tag) -> MeetingView | None:
        return _call(False, lambda: read_meeting(self._account(organizer), tag))

    def resolve(self, address: str) -> str | None:
        return _call(False, lambda: resolve_address(self.connection, address, self.connection.timeout))

    def free_busy(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        return self.availability(mailboxes, start, end, deadline)
