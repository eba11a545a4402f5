"""Silent appointments (no attendees, nobody e-mailed) converged to a desired state in one mailbox."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchangelib import Account, CalendarItem
from exchangelib.folders import Calendar

from downsync.exchange.items import Outcome, Tagged, Writer, delete_items, written_fields
from downsync.exchange.items import converge as converge_tagged


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
        out = asdict(self)
        out["start"], out["end"] = self.start.astimezone(UTC).isoformat(), self.end.astimezone(UTC).isoformat()
        return out

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:32]


class CreateAppointment:
    def __call__(self, acct: Account, folder: Calendar, kind: str, event_id: str, desired: Appointment) -> str:
        item = CalendarItem(
            account=acct,
            folder=folder,
            **written_fields(desired),
            downsync_event_id=event_id,
            downsync_kind=kind,
        )
        item.save(send_meeting_invitations="SendToNone")
        return str(item.id)


class UpdateAppointment:
    FIELDS = ["subject", "body", "location", "start", "end", "legacy_free_busy_status", "downsync_fingerprint"]

    def __call__(self, acct: Account, folder: Calendar, found: Tagged, desired: Appointment) -> str:
        item = CalendarItem(
            account=acct,
            folder=folder,
            id=found.item_id,
            changekey=found.changekey,
            **written_fields(desired),
        )
        # Our item, our fields: a concurrent change by the mailbox owner does not block the desired state.
        item.save(
            update_fields=self.FIELDS, conflict_resolution="AlwaysOverwrite", send_meeting_invitations="SendToNone"
        )
        return str(item.id)


create_appointment = CreateAppointment()
update_appointment = UpdateAppointment()


def converge(acct: Account, kind: str, event_id: str, desired: Appointment | None, known_id: str | None) -> Outcome:
    """Make the mailbox hold exactly one tagged appointment matching ``desired``, or none when it is None."""
    writer = Writer(
        create=lambda folder: create_appointment(acct, folder, kind, event_id, desired),  # type: ignore[arg-type]
        update=lambda folder, found: update_appointment(acct, folder, found, desired),  # type: ignore[arg-type]
        remove=lambda items: delete_items(acct, items),
    )
    return converge_tagged(acct, kind, event_id, desired.fingerprint if desired else None, known_id, writer)
