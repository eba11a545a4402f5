"""What every item the service writes shares: its tag, finding it again by the tag, deleting it, times.

Every item carries three extended properties: the Salesforce event id, the kind of write and a
fingerprint of the state written. An item is always found again by its tag, so a lost item id never
leads to a second copy, and a matching fingerprint means there is nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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


def ews_time(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


class Written(Protocol):
    """What every desired state carries into its calendar item."""

    subject: str
    body: str
    location: str | None
    start: datetime
    end: datetime

    @property
    def fingerprint(self) -> str: ...


def written_fields(desired: Written) -> dict[str, Any]:
    """The item fields every write sets: content, times in UTC, Busy, and the fingerprint of this state."""
    return {
        "subject": desired.subject,
        "body": Body(desired.body),
        "location": desired.location,
        "start": ews_time(desired.start),
        "end": ews_time(desired.end),
        "legacy_free_busy_status": "Busy",
        "downsync_fingerprint": desired.fingerprint,
    }


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


def plain_time(value: EWSDateTime) -> datetime:
    """exchangelib's time as a standard aware UTC datetime (EWSDateTime refuses other tzinfo types)."""
    utc = value.astimezone(EWS_UTC)
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, tzinfo=UTC)


class DeleteItems:
    def __call__(self, acct: Account, items: list[Tagged], cancellations: str = "SendToNone") -> None:
        if not items:
            return
        results = acct.bulk_delete(
            ids=[(t.item_id, t.changekey) for t in items],
            delete_type="HardDelete",
            send_meeting_cancellations=cancellations,
        )
        for result in results:
            # Already gone is what we wanted.
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise classify(result)


@dataclass(frozen=True)
class Outcome:
    item_id: str | None
    action: str  # created, updated, unchanged, deleted, absent


find_tagged = FindTagged()
delete_items = DeleteItems()


@dataclass(frozen=True)
class Writer:
    """How one kind of item is created, updated and removed; ``converge`` decides which is needed."""

    create: Callable[[Calendar], str]
    update: Callable[[Calendar, Tagged], str]
    remove: Callable[[list[Tagged]], None]


def converge(
    acct: Account, kind: str, event_id: str, fingerprint: str | None, known_id: str | None, writer: Writer
) -> Outcome:
    """Make the mailbox hold exactly one item tagged for the event with this fingerprint, or none when it is None.

    Extra copies (from any earlier fault) are removed; the one kept is the item id we stored, if present.
    """
    try:
        folder = calendar(acct)
        found = find_tagged(acct, folder, kind, event_id)
        if fingerprint is None:
            writer.remove(found)
            return Outcome(None, "removed" if found else "absent")
        found.sort(key=lambda t: t.item_id != known_id)
        keep, extra = (found[0], found[1:]) if found else (None, [])
        writer.remove(extra)
        if keep is None:
            return Outcome(writer.create(folder), "created")
        if keep.fingerprint == fingerprint:
            return Outcome(keep.item_id, "unchanged")
        return Outcome(writer.update(folder, keep), "updated")
    except Exception as exc:
        raise classify(exc) from exc
