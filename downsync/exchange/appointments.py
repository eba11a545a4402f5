"""Silent appointments (no attendees, nobody e-mailed) converged to a desired state in one mailbox.

Every item the service writes carries three extended properties: the Salesforce event id, the kind
of write, and a fingerprint of the state written. The item is always found again by its tag, so a
lost item id never leads to a second copy, and a matching fingerprint means there is nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorItemNotFound
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar
from exchangelib.properties import Body
from exchangelib.restriction import Q, Restriction
from exchangelib.services import FindItem

from downsync.exchange.connection import calendar
from downsync.exchange.errors import classify

PROPERTY_SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"
EWS_UTC = EWSTimeZone("UTC")


class EventIdProperty(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = "DownsyncEventId"
    property_type = "String"


class KindProperty(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = "DownsyncKind"
    property_type = "String"


class FingerprintProperty(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = "DownsyncFingerprint"
    property_type = "String"


for _name, _cls in (
    ("downsync_event_id", EventIdProperty),
    ("downsync_kind", KindProperty),
    ("downsync_fingerprint", FingerprintProperty),
):
    if _name not in {f.name for f in CalendarItem.FIELDS}:
        CalendarItem.register(_name, _cls)


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


def _ews_time(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


@dataclass(frozen=True)
class Tagged:
    item_id: str
    changekey: str
    fingerprint: str | None


class FindTagged:
    """FindItem on the calendar for every item tagged with one event (and kind): one request, no GetItem."""

    FIELDS = ("downsync_event_id", "downsync_fingerprint")

    def __call__(self, acct: Account, folder: Calendar, kind: str, event_id: str) -> list[Tagged]:
        restriction = Restriction(
            Q(downsync_event_id=event_id, downsync_kind=kind), folders=[folder], applies_to=Restriction.ITEMS
        )
        fields = {FieldPath(field=CalendarItem.get_field_by_fieldname(name)) for name in self.FIELDS}
        found = FindItem(account=acct, page_size=100).call(
            folders=[folder],
            additional_fields=fields,
            restriction=restriction,
            order_fields=None,
            shape="IdOnly",
            query_string=None,
            depth="Shallow",
            calendar_view=None,
            max_items=None,
            offset=0,
        )
        tagged = []
        for item in found:
            if isinstance(item, Exception):
                raise item
            # Exchange compares strings case-insensitively; Salesforce ids are not, so check exactly here.
            if item.downsync_event_id == event_id:
                tagged.append(Tagged(item.id, item.changekey, item.downsync_fingerprint))
        return tagged


class CreateAppointment:
    def __call__(self, acct: Account, folder: Calendar, kind: str, event_id: str, desired: Appointment) -> str:
        item = CalendarItem(
            account=acct,
            folder=folder,
            subject=desired.subject,
            body=Body(desired.body),
            location=desired.location,
            start=_ews_time(desired.start),
            end=_ews_time(desired.end),
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
            start=_ews_time(desired.start),
            end=_ews_time(desired.end),
            legacy_free_busy_status="Busy",
            downsync_fingerprint=desired.fingerprint,
        )
        # Our item, our fields: a concurrent change by the mailbox owner does not block the desired state.
        item.save(
            update_fields=self.FIELDS, conflict_resolution="AlwaysOverwrite", send_meeting_invitations="SendToNone"
        )
        return str(item.id)


class DeleteItems:
    def __call__(self, acct: Account, items: list[Tagged]) -> None:
        if not items:
            return
        results = acct.bulk_delete(
            ids=[(t.item_id, t.changekey) for t in items],
            delete_type="HardDelete",
            send_meeting_cancellations="SendToNone",
        )
        for result in results:
            # Already gone is what we wanted.
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise classify(result)


find_tagged = FindTagged()
create_appointment = CreateAppointment()
update_appointment = UpdateAppointment()
delete_items = DeleteItems()


@dataclass(frozen=True)
class Outcome:
    item_id: str | None
    action: str  # created, updated, unchanged, deleted, absent


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
