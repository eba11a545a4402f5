"""Real meetings in the organizer's calendar: invitations, updates and cancellations sent to every attendee.

The organizer's item carries the same tag as an appointment (event id, kind, fingerprint), so a
retried or repeated write finds the meeting instead of inviting everyone a second time, and an
unchanged fingerprint sends nobody anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchangelib import Account, Attendee, CalendarItem, Mailbox
from exchangelib.folders import Calendar

from downsync.exchange.connection import calendar
from downsync.exchange.errors import classify
from downsync.exchange.items import Outcome, Tagged, Writer, delete_items, find_tagged, plain_time, written_fields
from downsync.exchange.items import converge as converge_tagged

KIND = "meeting"
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


@dataclass(frozen=True)
class Invitee:
    email: str
    required: bool


@dataclass(frozen=True)
class Meeting:
    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    attendees: tuple[Invitee, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meeting:
        return cls(
            subject=data["subject"],
            body=data["body"],
            location=data.get("location"),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            attendees=tuple(Invitee(a["email"], bool(a["required"])) for a in data["attendees"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "body": self.body,
            "location": self.location,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "attendees": [asdict(a) for a in self.attendees],
        }

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:32]

    def _people(self, required: bool) -> list[Attendee]:
        return [Attendee(mailbox=Mailbox(email_address=a.email)) for a in self.attendees if a.required is required]


class CreateMeeting:
    def __call__(self, acct: Account, folder: Calendar, event_id: str, desired: Meeting) -> str:
        item = CalendarItem(
            account=acct,
            folder=folder,
            **written_fields(desired),
            required_attendees=desired._people(True) or None,
            optional_attendees=desired._people(False) or None,
            downsync_event_id=event_id,
            downsync_kind=KIND,
        )
        item.save(send_meeting_invitations=SEND)
        return str(item.id)


class UpdateMeeting:
    FIELDS = [
        "subject",
        "body",
        "location",
        "start",
        "end",
        "legacy_free_busy_status",
        "required_attendees",
        "optional_attendees",
        "downsync_fingerprint",
    ]

    def __call__(self, acct: Account, folder: Calendar, found: Tagged, desired: Meeting) -> str:
        item = CalendarItem(
            account=acct,
            folder=folder,
            id=found.item_id,
            changekey=found.changekey,
            **written_fields(desired),
            required_attendees=desired._people(True) or None,
            optional_attendees=desired._people(False) or None,
        )
        # Exchange sends the update to the attendees, invites added ones and cancels for removed ones.
        item.save(update_fields=self.FIELDS, conflict_resolution="AlwaysOverwrite", send_meeting_invitations=SEND)
        return str(item.id)


class CancelMeetings:
    def __call__(self, acct: Account, items: list[Tagged]) -> None:
        delete_items(acct, items, cancellations=SEND)


create_meeting = CreateMeeting()
update_meeting = UpdateMeeting()
cancel_meetings = CancelMeetings()


def converge(acct: Account, event_id: str, desired: Meeting | None, known_id: str | None) -> Outcome:
    """One tagged meeting in the organizer's calendar matching ``desired``, or none (cancelled) when it is None."""
    writer = Writer(
        create=lambda folder: create_meeting(acct, folder, event_id, desired),  # type: ignore[arg-type]
        update=lambda folder, found: update_meeting(acct, folder, found, desired),  # type: ignore[arg-type]
        remove=lambda items: cancel_meetings(acct, items),
    )
    return converge_tagged(acct, KIND, event_id, desired.fingerprint if desired else None, known_id, writer)


@dataclass(frozen=True)
class MeetingView:
    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    attendees: list[tuple[str, bool, str]]  # email, required, response in the contract's words


class ReadMeeting:
    """The meeting as the organizer's calendar holds it now, answers included; None when it is not there."""

    FIELDS = ("subject", "body", "location", "start", "end", "required_attendees", "optional_attendees")

    def __call__(self, acct: Account, event_id: str) -> MeetingView | None:
        try:
            found = find_tagged(acct, calendar(acct), KIND, event_id)
            if not found:
                return None
            [item] = list(acct.fetch(ids=[(found[0].item_id, found[0].changekey)], only_fields=list(self.FIELDS)))
            if isinstance(item, Exception):
                raise item
        except Exception as exc:
            raise classify(exc) from exc
        people = [(a, True) for a in item.required_attendees or []] + [
            (a, False) for a in item.optional_attendees or []
        ]
        return MeetingView(
            subject=item.subject or "",
            body=str(item.body or ""),
            location=item.location,
            start=plain_time(item.start),
            end=plain_time(item.end),
            attendees=[
                (a.mailbox.email_address, required, RESPONSES.get(a.response_type or "Unknown", "Unknown"))
                for a, required in people
            ],
        )


read_meeting = ReadMeeting()
