"""The in-memory organisation and its gateway. Every call may be intercepted: fail before it happens, happen
and then fail (an unclear outcome), or be held back and land later, as a write lost in transit does."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from downsync.core.errors import MAILBOX_NOT_FOUND, Conflict, PermanentError, TransientError, UnclearOutcome
from downsync.core.model import (
    Appointment,
    AttendeeView,
    Busy,
    Found,
    FreeBusy,
    ItemRef,
    Meeting,
    MeetingView,
    Tag,
)


@dataclass
class Item:
    id: str
    change: int
    tenant: str | None
    kind: str
    event_id: str
    fingerprint: str | None
    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    attendees: dict[str, bool] = field(default_factory=dict)  # address -> required
    sent: bool = False  # invitations went out

    @property
    def ref(self) -> ItemRef:
        return ItemRef(self.id, f"ck{self.change}")


@dataclass(frozen=True)
class Message:
    kind: str  # request, update, cancel
    to: str
    organizer: str
    item_id: str
    event_id: str
    tenant: str | None


# What an interceptor may say about one call: go ahead (None), or one of these.
FAIL = "fail"  # a transient failure before anything happened
THROTTLE = "throttle"  # the server asks to wait
APPLIED_UNCLEAR = "applied-unclear"  # it happened, but the caller hears nothing
LOST = "lost"  # it never happened, and the caller hears nothing
LATE = "late"  # it happens later (``land``), and the caller hears nothing now

Interceptor = Callable[[str, str], str | None]


class Organisation:
    def __init__(self) -> None:
        self.calendars: dict[str, dict[str, Item]] = {}
        self.messages: list[Message] = []
        self.missing: set[str] = set()  # addresses that are no mailbox
        # More addresses of mailboxes (alias -> primary): any of them names the mailbox, as in Exchange.
        self.aliases: dict[str, str] = {}
        # Directory lookups (``resolve``), kept apart from the mailbox calls: they reach no mailbox.
        self.lookups: list[str] = []
        self.directory_down = False  # every lookup fails, transiently
        self.intercept: Interceptor | None = None
        self.in_flight: list[Callable[[], None]] = []
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.lock = threading.RLock()

    def primary(self, address: str) -> str:
        address = address.strip().lower()
        return self.aliases.get(address, address)

    def calendar(self, mailbox: str) -> dict[str, Item]:
        mailbox = self.primary(mailbox)
        if mailbox in self.missing:
            raise PermanentError(MAILBOX_NOT_FOUND, f"{mailbox} is not a mailbox of the organisation")
        return self.calendars.setdefault(mailbox, {})

    def new_id(self) -> str:
        return f"item{next(self._ids)}"

    def land(self, count: int | None = None) -> int:
        """Let held-back writes happen (the oldest ``count``, or all); returns how many landed."""
        with self.lock:
            ready = self.in_flight[:count] if count is not None else list(self.in_flight)
            del self.in_flight[: len(ready)]
        for write in ready:
            try:
                write()
            except (Conflict, PermanentError):
                pass  # a stale write arriving late fails at the server, as Exchange's change keys make it
        return len(ready)

    def perform(self, operation: str, mailbox: str, action: Callable[[], Any], write: bool) -> Any:
        with self.lock:
            self.calls.append((operation, mailbox))
            verdict = self.intercept(operation, mailbox) if self.intercept else None
            if verdict == FAIL:
                raise TransientError("ErrorInternalServerTransientError", f"{operation} failed before it happened")
            if verdict == THROTTLE:
                raise TransientError("ErrorServerBusy", "the server is busy", back_off=0.5, throttled=True)
            if write and verdict == LATE:
                self.in_flight.append(action)
                raise UnclearOutcome("ErrorTimeout", f"{operation}: no answer in time")
            if write and verdict == LOST:
                raise UnclearOutcome("ErrorTimeout", f"{operation}: no answer in time")
            result = action()
            if write and verdict == APPLIED_UNCLEAR:
                raise UnclearOutcome("ErrorTimeout", f"{operation}: no answer in time")
            return result

    def send(self, item: Item, kind: str, to: str, organizer: str) -> None:
        self.messages.append(Message(kind, to, organizer, item.id, item.event_id, item.tenant))


_orgs: dict[str, Organisation] = {}
_orgs_lock = threading.Lock()


def organisation(name: str) -> Organisation:
    with _orgs_lock:
        return _orgs.setdefault(name, Organisation())


class MemoryGateway:
    backend = "memory"

    def __init__(self, org: Organisation) -> None:
        self.org = org

    def _item(self, mailbox: str, ref: ItemRef) -> Item:
        item = self.org.calendar(mailbox).get(ref.id)
        if item is None:
            raise Conflict("ErrorItemNotFound", f"{ref.id} is gone")
        if item.ref.change_key != ref.change_key:
            raise Conflict("ErrorIrresolvableConflict", f"{ref.id} changed since it was read")
        return item

    def find(self, mailbox: str, tag: Tag) -> list[Found]:
        def action() -> list[Found]:
            return [
                Found(i.ref, i.tenant, i.fingerprint)
                for i in self.org.calendar(mailbox).values()
                if i.kind == tag.kind and i.event_id == tag.event_id and i.tenant in (tag.tenant, None)
            ]

        return self.org.perform("find", mailbox, action, write=False)

    def _create(self, mailbox: str, tag: Tag, state: Appointment | Meeting, fingerprint: str | None) -> ItemRef:
        def action() -> ItemRef:
            item = Item(
                id=self.org.new_id(),
                change=1,
                tenant=tag.tenant,
                kind=tag.kind,
                event_id=tag.event_id,
                fingerprint=fingerprint,
                subject=state.subject,
                body=state.body,
                location=state.location,
                start=state.start,
                end=state.end,
            )
            self.org.calendar(mailbox)[item.id] = item
            return item.ref

        return self.org.perform("create", mailbox, action, write=True)

    def create_appointment(self, mailbox: str, tag: Tag, state: Appointment, key: str) -> ItemRef:
        return self._create(mailbox, tag, state, state.fingerprint)

    def create_meeting_draft(self, organizer: str, tag: Tag, state: Meeting, key: str) -> ItemRef:
        return self._create(organizer, tag, state, None)

    def _rewrite(self, item: Item, tag: Tag, state: Appointment | Meeting) -> None:
        item.tenant, item.kind, item.event_id = tag.tenant, tag.kind, tag.event_id
        item.subject, item.body, item.location, item.start, item.end = (
            state.subject,
            state.body,
            state.location,
            state.start,
            state.end,
        )
        item.fingerprint = state.fingerprint
        item.change += 1

    def update_appointment(self, mailbox: str, ref: ItemRef, tag: Tag, state: Appointment) -> ItemRef:
        def action() -> ItemRef:
            item = self._item(mailbox, ref)
            self._rewrite(item, tag, state)
            return item.ref

        return self.org.perform("update", mailbox, action, write=True)

    def send_meeting(self, organizer: str, ref: ItemRef, tag: Tag, state: Meeting) -> tuple[ItemRef, str | None]:
        def action() -> ItemRef:
            item = self._item(organizer, ref)
            before = set(item.attendees) if item.sent else set()
            # Kept under their primary address, as Exchange resolves recipients; but, as Exchange would, every entry
            # of the list is sent its own message: a person listed under two addresses hears it twice.
            people = [(self.org.primary(a.email), a.required) for a in state.attendees]
            item.attendees = dict(people)
            self._rewrite(item, tag, state)
            for email, _ in people:
                self.org.send(item, "update" if email in before else "request", email, organizer)
            for email in sorted(before - set(item.attendees)):
                self.org.send(item, "cancel", email, organizer)
            item.sent = True
            return item.ref

        return self.org.perform("send", organizer, action, write=True), None

    def _delete(self, mailbox: str, refs: Sequence[ItemRef], cancel: bool) -> None:
        def action() -> None:
            calendar = self.org.calendar(mailbox)
            for ref in refs:
                item = calendar.pop(ref.id, None)
                if item is not None and cancel and item.sent:
                    for email in sorted(item.attendees):
                        self.org.send(item, "cancel", email, mailbox)

        self.org.perform("cancel" if cancel else "remove", mailbox, action, write=True)

    def remove(self, mailbox: str, refs: Sequence[ItemRef]) -> None:
        self._delete(mailbox, refs, cancel=False)

    def cancel_meeting(self, organizer: str, refs: Sequence[ItemRef]) -> None:
        self._delete(organizer, refs, cancel=True)

    def read_meeting(self, organizer: str, tag: Tag) -> MeetingView | None:
        def action() -> MeetingView | None:
            sent = [f for f in self.find(organizer, tag) if f.fingerprint is not None]
            if not sent:
                return None
            item = self.org.calendar(organizer)[min(f.ref.id for f in sent)]
            return MeetingView(
                subject=item.subject,
                body=item.body,
                location=item.location,
                start=item.start,
                end=item.end,
                attendees=tuple(AttendeeView(e, r, "NoResponseReceived") for e, r in item.attendees.items()),
            )

        return self.org.perform("read", organizer, action, write=False)

    def resolve(self, address: str) -> str | None:
        with self.org.lock:
            self.org.lookups.append(address.strip().lower())
            if self.org.directory_down:
                raise TransientError("ErrorInternalServerTransientError", "the directory did not answer")
            primary = self.org.primary(address)
            return None if primary in self.org.missing else primary

    def free_busy(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        answers = {}
        for mailbox in mailboxes:
            try:
                items = self.org.calendar(mailbox).values()
            except PermanentError as error:
                answers[mailbox] = FreeBusy(error.code, error.message)
                continue
            answers[mailbox] = FreeBusy(
                spans=[Busy(i.start, i.end, "Busy") for i in items if i.start < end and i.end > start]
            )
        return answers
