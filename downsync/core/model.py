"""Backend-neutral calendar types: what downsync writes, how it finds it again, what Exchange answers.

An appointment is an item with no attendees (nobody is e-mailed); a meeting adds attendees, who are
invited by the organizer's mailbox. Every item downsync writes carries a ``Tag`` naming the tenant, the
kind of write and the Salesforce event id, and the fingerprint of the state written, so a retried or
repeated write finds it instead of writing it twice, and an unchanged fingerprint means nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

POSTBACK = "postback"
MEETING = "meeting"


@dataclass(frozen=True)
class Tag:
    """Who wrote an item and for what: a tenant's tag id, the kind of write, the Salesforce event id."""

    tenant: str
    kind: str
    event_id: str


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Appointment:
    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Appointment:
        return cls(
            subject=data["subject"],
            body=data["body"],
            location=data.get("location"),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "body": self.body,
            "location": self.location,
            "start": _utc(self.start),
            "end": _utc(self.end),
        }

    @property
    def fingerprint(self) -> str:
        return _digest(self.to_json())


@dataclass(frozen=True)
class Invitee:
    email: str
    required: bool


@dataclass(frozen=True)
class Meeting:
    """A meeting as its organizer holds it. Attendee order carries no meaning: it is not in the fingerprint."""

    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    attendees: tuple[Invitee, ...] = ()
    # An online meeting (MS Teams) where the backend can make one; elsewhere the location stays text.
    online: bool = False
    # The fingerprint of the accepted state this one was derived from (attendees merged by mailbox): the item
    # carries it, so that state keeps matching what was written.
    written_as: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meeting:
        return cls(
            subject=data["subject"],
            body=data["body"],
            location=data.get("location"),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            attendees=tuple(Invitee(a["email"], bool(a["required"])) for a in data.get("attendees", [])),
            online=bool(data.get("online", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "body": self.body,
            "location": self.location,
            "start": _utc(self.start),
            "end": _utc(self.end),
            "attendees": [{"email": a.email, "required": a.required} for a in self.attendees],
            "online": self.online,
        }

    @property
    def fingerprint(self) -> str:
        if self.written_as is not None:
            return self.written_as
        data = self.to_json()
        data["attendees"] = sorted((a["email"].lower(), a["required"]) for a in data["attendees"])
        if not self.online:
            data.pop("online")  # fingerprints written before online meetings existed stay valid
        return _digest(data)


Desired = Appointment | Meeting


@dataclass(frozen=True)
class ItemRef:
    """One item in one mailbox, with the change key (EWS) or etag (Graph) it had when read or written."""

    id: str
    change_key: str


@dataclass(frozen=True)
class Found:
    """An item carrying an event's tag, as a search found it.

    ``tenant`` is None for items tagged before tags named the tenant. ``fingerprint`` is None for a meeting
    saved as a draft whose invitations have not gone out yet.
    """

    ref: ItemRef
    tenant: str | None
    fingerprint: str | None
    uid: str | None = None


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    busy_type: str  # Exchange's words: Free, Tentative, Busy, OOF, WorkingElsewhere, NoData


@dataclass
class FreeBusy:
    """One mailbox's answer to an availability lookup: its busy spans, or the code of its failure."""

    code: str = "NoError"
    message: str | None = None
    spans: list[Busy] = field(default_factory=list)


@dataclass(frozen=True)
class AttendeeView:
    email: str
    required: bool
    response: str  # the contract's words: Accepted, Declined, Tentative, NoResponseReceived, Organizer, Unknown


@dataclass(frozen=True)
class MeetingView:
    """A meeting as the organizer's calendar holds it now, with each attendee's answer."""

    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime
    attendees: tuple[AttendeeView, ...]
