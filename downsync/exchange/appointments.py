"""Silent appointments (no attendees, nobody e-mailed) converged to a desired state in one mailbox."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchangelib import Account, CalendarItem
from exchangelib.folders import Calendar
from exchangelib.properties import Body

from downsync.exchange.connection import calendar
from downsync.exchange.errors import classify
from downsync.exchange.items import Outcome, Tagged, delete_items, ews_time, find_tagged


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
            subject=desired.subject,
            body=Body(desired.body),
            location=desired.location,
            start=ews_time(desired.start),
            end=ews_time(desired.end),
            legacy_free_busy_status="Busy",
            downsync_event_id=event_id,
            downsync_kind=kind,
            downsync_fingerprint=desired.fingerprint,
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
            subject=desired.subject,
            body=Body(desired.body),
            location=desired.location,
            start=ews_time(desired.start),
            end=ews_time(desired.end),
            legacy_free_busy_status="Busy",
            downsync_fingerprint=desired.fingerprint,
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
    try:
        folder = calendar(acct)
        found = find_tagged(acct, folder, kind, event_id)
        if desired is None:
            delete_items(acct, found)
            return Outcome(None, "deleted" if found else "absent")
        found.sort(key=lambda t: t.item_id != known_id)
        keep, extra = (found[0], found[1:]) if found else (None, [])
        delete_items(acct, extra)
        if keep is None:
            return Outcome(create_appointment(acct, folder, kind, event_id, desired), "created")
        if keep.fingerprint == desired.fingerprint:
            return Outcome(keep.item_id, "unchanged")
        return Outcome(update_appointment(acct, folder, keep, desired), "updated")
    except Exception as exc:
        raise classify(exc) from exc
