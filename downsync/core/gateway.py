"""The one interface every calendar backend implements (EWS, Microsoft Graph, in-memory).

Like a vdirsyncer storage: items are found by their tag, and every change to an existing item names
the change key (etag) it was read with, so a write based on a stale read fails with ``Conflict``
instead of overwriting a newer state. Creates carry an idempotency key (Graph's ``transactionId``);
where a backend has none, the core's leases and settle time keep a retried create from landing twice.

Meetings are written in two steps so that nobody is ever invited twice: a silent draft (no attendees,
nobody e-mailed) that may safely land twice, then ``send_meeting``, a change-key fenced update that
adds the attendees and sends the invitations (or the update) from exactly one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from downsync.core.model import Appointment, Found, FreeBusy, ItemRef, Meeting, MeetingView, Tag


class CalendarGateway(Protocol):
    """One tenant's calendars. Every method raises only ``downsync.core.errors`` types for Exchange's failures."""

    backend: str

    def find(self, mailbox: str, tag: Tag) -> list[Found]:
        """Every item in the mailbox's calendar tagged with this kind and event id, for this tenant or untagged
        by tenant (written before tags named the tenant); never another tenant's."""
        ...

    def create_appointment(self, mailbox: str, tag: Tag, state: Appointment, key: str) -> ItemRef:
        """A tagged appointment (no attendees, nobody e-mailed); ``key`` identifies this create for backends
        that deduplicate retried creates."""
        ...

    def update_appointment(self, mailbox: str, ref: ItemRef, tag: Tag, state: Appointment) -> ItemRef:
        """Rewrite the item to ``state`` (and ``tag``) if it still has ``ref.change_key``; else ``Conflict``."""
        ...

    def remove(self, mailbox: str, refs: Sequence[ItemRef]) -> None:
        """Delete items without telling anyone; items already gone are fine."""
        ...

    def create_meeting_draft(self, organizer: str, tag: Tag, state: Meeting, key: str) -> ItemRef:
        """The meeting in the organizer's calendar with no attendees and no fingerprint: nobody is invited."""
        ...

    def send_meeting(self, organizer: str, ref: ItemRef, tag: Tag, state: Meeting) -> tuple[ItemRef, str | None]:
        """Make the meeting match ``state`` and send it: requests to new attendees, updates to the others,
        cancellations to removed ones. Fenced by ``ref.change_key`` (``Conflict`` if stale). Returns the item
        and a note for the caller when part of ``state`` could not be honoured (e.g. no online meeting)."""
        ...

    def cancel_meeting(self, organizer: str, refs: Sequence[ItemRef]) -> None:
        """Cancel sent meetings: every attendee gets the cancellation and the organizer's items go."""
        ...

    def read_meeting(self, organizer: str, tag: Tag) -> MeetingView | None:
        """The tagged meeting as the organizer's calendar holds it now, or None."""
        ...

    def resolve(self, address: str) -> str | None:
        """The primary address of the mailbox ``address`` names (any of its addresses), as the directory spells it;
        None when the directory has no such mailbox, which is an answer, not a failure."""
        ...

    def free_busy(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        """Busy spans of every mailbox overlapping [start, end), answered by ``deadline`` (time.monotonic());
        a mailbox without an answer by then is ``ErrorTimeout``. Never raises for one mailbox's failure."""
        ...
