"""Calendar items as downsync writes them through EWS: the tag's extended properties, finding tagged items,
the fields every write sets, and times.

Every item carries four extended properties: the tenant's tag id, the kind of write, the Salesforce
event id, and the fingerprint of the state written (absent on a meeting draft not sent yet).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar
from exchangelib.properties import Body

from downsync.core.model import Appointment, Found, ItemRef, Meeting, Tag

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


class TenantProperty(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = "DownsyncTenant"
    property_type = "String"


for _name, _cls in (
    ("downsync_event_id", EventIdProperty),
    ("downsync_kind", KindProperty),
    ("downsync_fingerprint", FingerprintProperty),
    ("downsync_tenant", TenantProperty),
):
    if _name not in {f.name for f in CalendarItem.FIELDS}:
        CalendarItem.register(_name, _cls)


def ews_time(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


def plain_time(value: EWSDateTime) -> datetime:
    """exchangelib's time as a standard aware UTC datetime (EWSDateTime refuses other tzinfo types)."""
    utc = value.astimezone(EWS_UTC)
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, tzinfo=UTC)


def tag_fields(tag: Tag) -> dict[str, Any]:
    return {"downsync_tenant": tag.tenant, "downsync_kind": tag.kind, "downsync_event_id": tag.event_id}


# Characters XML 1.0 cannot carry (most C0 controls, lone surrogates, U+FFFE/U+FFFF): EWS cannot store them, so they
# are left out of what is written; everything else arrives as sent.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str | None) -> str | None:
    return _NOT_XML.sub("", value) if value is not None else None


def written_fields(state: Appointment | Meeting, fingerprint: str | None) -> dict[str, Any]:
    """The item fields every write sets: content, times in UTC, Busy, and the fingerprint of this state."""
    return {
        "subject": xml_text(state.subject),
        "body": Body(xml_text(state.body)),
        "location": xml_text(state.location),
        "start": ews_time(state.start),
        "end": ews_time(state.end),
        "legacy_free_busy_status": "Busy",
        "downsync_fingerprint": fingerprint,
    }


UPDATED = ["subject", "body", "location", "start", "end", "legacy_free_busy_status", "downsync_fingerprint"]
TAG_FIELDS = ["downsync_tenant", "downsync_kind", "downsync_event_id"]


def calendar(acct: Account) -> Calendar:
    from downsync.backends.ews.connection import calendar as distinguished

    return distinguished(acct)


class FindTagged:
    """FindItem on the calendar for every item of one event and kind, this tenant's or untagged by tenant:
    one request, no GetItem."""

    FIELDS = ("downsync_event_id", "downsync_fingerprint", "downsync_tenant", "uid")

    @functools.cached_property
    def field_paths(self) -> list[FieldPath]:
        # The fields exchangelib reads from each item found.
        return [FieldPath(field=CalendarItem.get_field_by_fieldname(name)) for name in self.FIELDS]

    def __call__(self, acct: Account, folder: Calendar, tag: Tag) -> list[Found]:
        from downsync.backends.ews.wire import FindTaggedItems

        # An item another tenant wrote is never even read back (the restriction is in wire.find_payload).
        found = FindTaggedItems(account=acct, page_size=100, tag=tag).call(
            folders=[folder],
            additional_fields=self.field_paths,
            restriction=None,
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
            # Exchange compares strings case-insensitively; Salesforce ids and tag ids are not, so check exactly.
            if item.downsync_event_id != tag.event_id or item.downsync_tenant not in (tag.tenant, None):
                continue
            tagged.append(
                Found(
                    ref=ItemRef(item.id, item.changekey),
                    tenant=item.downsync_tenant,
                    fingerprint=item.downsync_fingerprint or None,
                    uid=item.uid,
                )
            )
        return tagged


find_tagged = FindTagged()
