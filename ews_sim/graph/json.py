"""Events between the store (``CalendarItem``, shared with EWS) and Graph's JSON, both ways.

Ids: Exchange's REST id is the EWS item id with ``/`` written ``-`` and ``+`` written ``_``, so
the two are interchangeable by that rule. ``changeKey`` (and ``@odata.etag``, ``W/"<changeKey>"``)
is the change key EWS reports, so a write through either door invalidates the other's.

Times: ``dateTimeTimeZone`` carries a local time and a zone: ``UTC``, a Windows zone name (the
ones ``ews_sim.timezones`` knows) or an IANA name. Responses use the ``Prefer:
outlook.timezone`` zone, else UTC. Extended properties live in the same storage as EWS's
(``store.ext_key``): ``String {guid} Name X`` is EWS's PropertySetId/PropertyName/String.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote

from ews_sim import timezones
from ews_sim.graph.errors import GraphError
from ews_sim.items import _merge_answers, cut_subject
from ews_sim.recurrence import Recurrence, RecurrenceError
from ews_sim.store import DISTINGUISHED_SETS, Attendee, CalendarItem, ExtendedValue, ext_key

# --- ids -------------------------------------------------------------------------------------------------


def rest_id(ews_id: str) -> str:
    return ews_id.replace("/", "-").replace("+", "_")


def ews_id(rest: str) -> str:
    return rest.replace("-", "/").replace("_", "+")


# --- enumerations ----------------------------------------------------------------------------------------

SHOW_AS = {
    "Free": "free",
    "Tentative": "tentative",
    "Busy": "busy",
    "OOF": "oof",
    "WorkingElsewhere": "workingElsewhere",
}
FREE_BUSY = {v.lower(): k for k, v in SHOW_AS.items()} | {"unknown": "NoData"}
# The event's own answer (responseStatus) and an attendee's answer as the organizer's event shows it. Exchange
# shows a not-yet-answered invitee as "none" on the organizer's event, and "notResponded" on the invitee's copy.
MY_RESPONSE = {
    "Unknown": "none",
    "Organizer": "organizer",
    "Tentative": "tentativelyAccepted",
    "Accept": "accepted",
    "Decline": "declined",
    "NoResponseReceived": "notResponded",
}
ATTENDEE_RESPONSE = MY_RESPONSE | {"NoResponseReceived": "none"}
EVENT_TYPES = {
    "Single": "singleInstance",
    "RecurringMaster": "seriesMaster",
    "Occurrence": "occurrence",
    "Exception": "exception",
}
ATTENDEE_LISTS = {"required": "required", "optional": "optional", "resource": "resources"}
NO_TIME = "0001-01-01T00:00:00Z"
OWA = "https://outlook.office365.com/owa/"

# What attendees see: a change to one of these on an organizer's meeting sends them an update.
ATTENDEE_VISIBLE = {
    "subject",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "attendees",
    "isAllDay",
    "importance",
    "sensitivity",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "responseRequested",
    "allowNewTimeProposals",
    "recurrence",
}

# --- time zones ------------------------------------------------------------------------------------------

_UTC_NAMES = {"", "utc", "etc/utc", "z", "gmt", "tzone://microsoft/utc", "coordinated universal time"}
IANA_TO_WINDOWS = {}
for _ms, _iana in timezones.MS_TO_IANA.items():
    IANA_TO_WINDOWS.setdefault(_iana.lower(), _ms)


def zone(name: str | None) -> tzinfo:
    """A Graph ``timeZone`` value as a tzinfo: UTC, a Windows zone name or an IANA name."""
    if name is None or name.strip().lower() in _UTC_NAMES:
        return UTC
    name = name.strip()
    try:
        return timezones.zone(name)
    except timezones.UnknownTimeZoneError:
        pass
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name):
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise GraphError(
        400,
        "TimeZoneNotSupportedException",
        f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
    )


def windows_zone(name: str | None) -> str:
    """The Windows id to store for a Graph ``timeZone`` (what EWS reports as StartTimeZone)."""
    if name is None or name.strip().lower() in _UTC_NAMES:
        return "UTC"
    name = name.strip()
    if name in timezones.MS_TO_IANA:
        return name
    return IANA_TO_WINDOWS.get(name.lower(), name)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_local(text: Any, tz: tzinfo, what: str) -> datetime:
    """A ``dateTime`` (local to ``tz`` unless it carries an offset) as an aware UTC datetime."""
    if not isinstance(text, str):
        raise GraphError(400, "ErrorInvalidRequest", f"{what}.dateTime is required.")
    cleaned = _FRACTION.sub(r"\1", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidRequest", f"Cannot read '{text}' as the date and time of {what}.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def folded(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object's members by lower-cased name: Graph reads property names case-insensitively."""
    return {k.lower(): v for k, v in value.items()}


def parse_dtz(value: Any, what: str) -> tuple[datetime, str]:
    """A ``dateTimeTimeZone`` object as (UTC datetime, Windows zone id to store)."""
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest", f"{what} must be a dateTimeTimeZone object.")
    value = folded(value)
    name = value.get("timezone")
    if name is not None and not isinstance(name, str):
        raise GraphError(400, "ErrorInvalidRequest", f"{what}.timeZone must be a string.")
    return parse_local(value.get("datetime"), zone(name), what), windows_zone(name)


def fmt_dtz(value: datetime, zone_name: str | None, tz: tzinfo = UTC) -> dict[str, str]:
    if value.tzinfo is UTC:
        return {"dateTime": _local_iso(value, tz), "timeZone": zone_name or "UTC"}
    local = value.astimezone(tz).replace(tzinfo=None, microsecond=0)
    return {"dateTime": local.isoformat() + ".0000000", "timeZone": zone_name or "UTC"}


@functools.lru_cache(maxsize=4096)
def _local_iso(value: datetime, tz: tzinfo) -> str:
    """A UTC time as local time in ``tz``. Cached because getSchedule writes the same few times (meetings start on
    the hour) thousands of times a second, and this was a third of its cost. Only UTC values come here: equal
    ones are the same instant (two equal times of another zone may differ by its fold)."""
    return value.astimezone(tz).replace(tzinfo=None, microsecond=0).isoformat() + ".0000000"


def fmt_offset(value: datetime | None) -> str:
    if value is None:
        return NO_TIME
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def preferences(headers: Iterable[str]) -> dict[str, str]:
    """``Prefer`` values (``outlook.timezone="Pacific Standard Time"``, ``return=minimal``) by lower-cased name."""
    found: dict[str, str] = {}
    for header in headers:
        for part in re.findall(r'(?:[^,"]|"[^"]*")+', header):
            name, _, value = part.strip().partition("=")
            if name:
                found[name.strip().lower()] = value.strip().strip('"')
    return found


# --- extended properties ---------------------------------------------------------------------------------

_EXT_NAMED = re.compile(
    r"^\s*(\w+)\s+\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?"
    r"\s+(name|id)\s+(.+?)\s*$",
    re.IGNORECASE,
)
_EXT_TAG = re.compile(r"^\s*(\w+)\s+(0x[0-9a-fA-F]{1,4})\s*$", re.IGNORECASE)


def parse_ext_id(text: Any) -> dict[str, str]:
    """A Graph extended property id as EWS ExtendedFieldURI attributes (``String {guid} Name X``,
    ``Integer {guid} Id 0x8005``, ``String 0x0037``)."""
    if isinstance(text, str):
        named = _EXT_NAMED.match(text)
        if named:
            kind, guid, how, name = named.groups()
            attrs = {"PropertySetId": guid.lower(), "PropertyType": kind}
            if how.lower() == "name":
                attrs["PropertyName"] = name
                return attrs
            try:
                attrs["PropertyId"] = str(int(name, 0))
            except ValueError:
                pass
            else:
                return attrs
        tagged = _EXT_TAG.match(text)
        if tagged:
            return {"PropertyTag": tagged.group(2), "PropertyType": tagged.group(1)}
    raise GraphError(400, "ErrorInvalidExtendedProperty", f"The extended property id '{text}' is not valid.")


def format_ext_id(attrs: dict[str, str]) -> str:
    kind = attrs.get("PropertyType", "String")
    if attrs.get("PropertyTag"):
        return f"{kind} 0x{int(attrs['PropertyTag'], 0):04x}"
    prop_set = (attrs.get("PropertySetId") or attrs.get("DistinguishedPropertySetId") or "").lower()
    prop_set = DISTINGUISHED_SETS.get(prop_set, prop_set)
    if attrs.get("PropertyName") is not None:
        return f"{kind} {{{prop_set}}} Name {attrs['PropertyName']}"
    return f"{kind} {{{prop_set}}} Id 0x{int(attrs.get('PropertyId') or '0', 0):04x}"


def ext_json(item: CalendarItem, ids: list[str] | None, multi: bool) -> list[dict[str, Any]]:
    """The item's extended properties of one kind (single- or multi-value), those named by ``ids`` or all."""
    if ids is None:
        return [
            {"id": format_ext_id(v.attrs), "value": v.value}
            for v in item.extended.values()
            if isinstance(v.value, list) == multi
        ]
    out = []
    for wanted in ids:
        found = item.extended.get(ext_key(parse_ext_id(wanted)))
        if found is not None and isinstance(found.value, list) == multi:
            out.append({"id": wanted, "value": found.value})
    return out


# --- store -> JSON ---------------------------------------------------------------------------------------


@dataclass
class View:
    """How to render events for one request."""

    base: str  # scheme://host:port of the request, for links
    zone_name: str | None = None  # Prefer: outlook.timezone
    select: set[str] | None = None
    expand: dict[str, list[str] | None] | None = None  # navigation property -> wanted ids (None: all)

    def __post_init__(self) -> None:
        self.tz = zone(self.zone_name) if self.zone_name else UTC


_TAGS = re.compile(r"<[^>]*>")


def _preview(item: CalendarItem) -> str:
    text = _TAGS.sub("", item.body) if item.body_type.lower() == "html" else item.body
    return " ".join(text.split())[:255]


def _location(name: str | None) -> dict[str, Any]:
    if not name:
        return {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
    return {"displayName": name, "locationType": "default", "uniqueId": name, "uniqueIdType": "private"}


def _person(person: Attendee) -> dict[str, Any]:
    return {"emailAddress": {"name": person.name or person.email, "address": person.email}}


def _attendees(item: CalendarItem) -> list[dict[str, Any]]:
    out = []
    for kind, people in (("required", item.required), ("optional", item.optional), ("resource", item.resources)):
        for person in people:
            out.append(
                {
                    "type": kind,
                    "status": {
                        "response": ATTENDEE_RESPONSE.get(person.response, "none"),
                        "time": fmt_offset(person.last_response_time),
                    },
                    **_person(person),
                }
            )
    return out


def event_json(item: CalendarItem, view: View) -> dict[str, Any]:
    key = item.change_key
    event_id = rest_id(item.item_id)
    out: dict[str, Any] = {
        "@odata.etag": f'W/"{key}"',
        "id": event_id,
        "createdDateTime": fmt_offset(item.created),
        "lastModifiedDateTime": fmt_offset(item.modified),
        "changeKey": key,
        "categories": list(item.categories),
    }
    if item.transaction_id is not None:
        out["transactionId"] = item.transaction_id  # returned only when a client set one
    if item.original_start is not None:
        out["originalStart"] = fmt_offset(item.original_start)  # occurrences and exceptions only
    out.update(
        {
            "originalStartTimeZone": item.start_tz or "UTC",
            "originalEndTimeZone": item.end_tz or "UTC",
            "iCalUId": item.uid,
            "reminderMinutesBeforeStart": item.reminder_minutes,
            "isReminderOn": item.reminder_is_set,
            "hasAttachments": False,
            "subject": item.subject,
            "bodyPreview": _preview(item),
            "importance": item.importance.lower(),
            "sensitivity": item.sensitivity.lower(),
            "isAllDay": item.is_all_day,
            "isCancelled": item.is_cancelled,
            "isOrganizer": item.is_organizer_copy,
            "responseRequested": item.is_response_requested,
            "seriesMasterId": rest_id(item.master_id) if item.master_id else None,
            "showAs": SHOW_AS.get(item.free_busy, "unknown"),
            "type": EVENT_TYPES[item.calendar_item_type],
            "webLink": f"{OWA}?itemid={quote(event_id, safe='')}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": item.is_online_meeting,
            "onlineMeetingProvider": item.online_meeting_provider,
            "allowNewTimeProposals": item.allow_new_time_proposal,
            "isDraft": False,
            "hideAttendees": False,
            "recurrence": item.recurrence.graph_json(item.start_tz or "UTC") if item.recurrence is not None else None,
            "onlineMeeting": {"joinUrl": item.join_url} if item.join_url else None,
            "responseStatus": {"response": MY_RESPONSE.get(item.my_response, "none"), "time": NO_TIME},
            "body": {"contentType": "html" if item.body_type.lower() == "html" else "text", "content": item.body},
            "start": fmt_dtz(item.start, view.zone_name, view.tz),
            "end": fmt_dtz(item.end, view.zone_name, view.tz),
            "location": _location(item.location),
            "locations": [_location(item.location)] if item.location else [],
            "attendees": _attendees(item),
            "organizer": _person(item.organizer or Attendee(email=item.mailbox, name=item.mailbox)),
        }
    )
    if view.select is not None:
        out = {k: v for k, v in out.items() if k in view.select or k in ("@odata.etag", "id")}
    if view.expand:
        for nav, ids in view.expand.items():
            out[nav] = ext_json(item, ids, multi=nav == "multiValueExtendedProperties")
    return out


# --- JSON -> store ---------------------------------------------------------------------------------------

# Declared event properties the simulator accepts and ignores: read-only ones Graph ignores on write,
# and settings it does not model.
IGNORED = {
    "id",
    "@odata.etag",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "bodyPreview",
    "hasAttachments",
    "isOrganizer",
    "isCancelled",
    "seriesMasterId",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "onlineMeeting",
    "responseStatus",
    "organizer",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "originalStart",
    "isDraft",
    "hideAttendees",
    "cancelledOccurrences",
}


@dataclass
class Written:
    """What a create or update body asked for, beyond the fields it set directly."""

    changed: set[str]
    online: bool | None = None  # isOnlineMeeting as sent
    provider: str | None = None  # onlineMeetingProvider as sent


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise GraphError(400, "ErrorInvalidRequest", f"{what} must be a string.")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise GraphError(400, "ErrorInvalidRequest", f"{what} must be true or false.")
    return value


def _enum(value: Any, table: dict[str, str], what: str) -> str:
    found = table.get(value.lower()) if isinstance(value, str) else None
    if found is None:
        raise GraphError(400, "ErrorInvalidRequest", f"Requested value '{value}' was not found for {what}.")
    return found


def _attendee_lists(value: Any) -> dict[str, list[Attendee]]:
    if not isinstance(value, list):
        raise GraphError(400, "ErrorInvalidRequest", "attendees must be a list.")
    lists: dict[str, list[Attendee]] = {"required": [], "optional": [], "resources": []}
    for entry in value:
        entry = folded(entry) if isinstance(entry, dict) else {}
        box = folded(entry["emailaddress"]) if isinstance(entry.get("emailaddress"), dict) else {}
        address = box.get("address")
        if not isinstance(address, str) or "@" not in address:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        kind = _enum(entry.get("type") or "required", ATTENDEE_LISTS, "attendee type")
        name = box.get("name") if isinstance(box.get("name"), str) else ""
        lists[kind].append(Attendee(email=address.strip(), name=(name or "").strip()))
    return lists


def _extended(item: CalendarItem, value: Any, multi: bool) -> None:
    if not isinstance(value, list):
        raise GraphError(400, "ErrorInvalidRequest", "Extended properties must be a list.")
    for entry in value:
        if not isinstance(entry, dict):
            raise GraphError(400, "ErrorInvalidRequest", "An extended property must be an object with id and value.")
        entry = folded(entry)
        attrs = parse_ext_id(entry.get("id"))
        data = entry.get("value")
        key = ext_key(attrs)
        if data is None:
            item.extended.pop(key, None)
        elif multi and isinstance(data, list) and all(isinstance(v, str) for v in data):
            item.extended[key] = ExtendedValue(attrs=attrs, value=list(data))
        elif not multi and isinstance(data, str):
            item.extended[key] = ExtendedValue(attrs=attrs, value=data)
        else:
            raise GraphError(
                400,
                "ErrorInvalidExtendedPropertyValue",
                f"The value of extended property '{entry.get('id')}' is not valid.",
            )


Setter = Callable[[CalendarItem, Any, Written], None]


def _set_body(item: CalendarItem, value: Any, written: Written) -> None:
    if value is None:
        item.body, item.body_type = "", "Text"
        return
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest", "body must be an itemBody object.")
    value = folded(value)
    item.body = _str(value.get("content"), "body.content")
    kind = value.get("contenttype") or "text"
    item.body_type = "HTML" if _enum(kind, {"html": "html", "text": "text"}, "body.contentType") == "html" else "Text"


def _set_time(which: str) -> Setter:
    def setter(item: CalendarItem, value: Any, written: Written) -> None:
        moment, tz_id = parse_dtz(value, which)
        setattr(item, which, moment)
        setattr(item, f"{which}_tz", tz_id)

    return setter


def _set_location(item: CalendarItem, value: Any, written: Written) -> None:
    if value is None:
        item.location = None
        return
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest", "location must be a location object.")
    item.location = _str(folded(value).get("displayname"), "location.displayName") or None


def _set_locations(item: CalendarItem, value: Any, written: Written) -> None:
    if "location" in written.changed:
        return
    if not isinstance(value, list):
        raise GraphError(400, "ErrorInvalidRequest", "locations must be a list.")
    _set_location(item, value[0] if value else None, written)


def _set_attendees(item: CalendarItem, value: Any, written: Written) -> None:
    lists = _attendee_lists(value or [])
    for name, people in lists.items():
        setattr(item, name, _merge_answers(getattr(item, name), people))


def _set_recurrence(item: CalendarItem, value: Any, written: Written) -> None:
    if value is None:
        item.recurrence = None
        return
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest", "recurrence must be a patternedRecurrence object.")
    try:
        item.recurrence = Recurrence.from_graph(value)
    except (RecurrenceError, TypeError, ValueError) as exc:
        raise GraphError(400, "ErrorPropertyValidationFailure", f"The recurrence is not valid ({exc}).") from exc


def _set_online(item: CalendarItem, value: Any, written: Written) -> None:
    written.online = _bool(value, "isOnlineMeeting")


def _set_provider(item: CalendarItem, value: Any, written: Written) -> None:
    written.provider = _enum(
        value,
        {p.lower(): p for p in ("unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness")},
        "onlineMeetingProvider",
    )


def _set_categories(item: CalendarItem, value: Any, written: Written) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphError(400, "ErrorInvalidRequest", "categories must be a list of strings.")
    item.categories = list(value)


def _field(name: str, convert: Callable[[Any, str], Any]) -> Setter:
    return lambda item, value, written: setattr(item, name, convert(value, name))


SETTERS: dict[str, Setter] = {
    "subject": lambda item, value, w: setattr(item, "subject", cut_subject(_str(value, "subject"))),
    "body": _set_body,
    "start": _set_time("start"),
    "end": _set_time("end"),
    "location": _set_location,
    "locations": _set_locations,
    "attendees": _set_attendees,
    "showAs": lambda item, value, w: setattr(item, "free_busy", _enum(value, FREE_BUSY, "showAs")),
    "isAllDay": _field("is_all_day", _bool),
    "isReminderOn": _field("reminder_is_set", _bool),
    "reminderMinutesBeforeStart": lambda item, value, w: setattr(item, "reminder_minutes", int(value)),
    "responseRequested": _field("is_response_requested", _bool),
    "allowNewTimeProposals": _field("allow_new_time_proposal", _bool),
    "importance": lambda item, value, w: setattr(
        item, "importance", _enum(value, {"low": "Low", "normal": "Normal", "high": "High"}, "importance")
    ),
    "sensitivity": lambda item, value, w: setattr(
        item,
        "sensitivity",
        _enum(
            value,
            {"normal": "Normal", "personal": "Personal", "private": "Private", "confidential": "Confidential"},
            "sensitivity",
        ),
    ),
    "categories": _set_categories,
    "recurrence": _set_recurrence,
    "isOnlineMeeting": _set_online,
    "onlineMeetingProvider": _set_provider,
    "singleValueExtendedProperties": lambda item, value, w: _extended(item, value, multi=False),
    "multiValueExtendedProperties": lambda item, value, w: _extended(item, value, multi=True),
}
_FOLDED = {name.lower(): name for name in (*SETTERS, *IGNORED, "transactionId")}
# "locations" yields to "location" when both are sent, so it is applied last.
_ORDER = {name: n for n, name in enumerate(SETTERS)}


def canonical(body: dict[str, Any]) -> dict[str, Any]:
    """The body with property names as Graph declares them (Graph reads them case-insensitively)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if "@" in key:
            continue
        out[_FOLDED.get(key.lower(), key)] = value
    return out


def apply_event(item: CalendarItem, body: dict[str, Any]) -> Written:
    """Set the item's fields from a create or update body (names already canonical); returns what was written."""
    written = Written(changed=set())
    for name in sorted(body, key=lambda n: _ORDER.get(n, -1)):
        setter = SETTERS.get(name)
        if setter is None:
            continue  # read-only, unmodelled or (outside strict mode) undeclared: ignored
        try:
            setter(item, body[name], written)
        except (TypeError, ValueError) as exc:
            raise GraphError(400, "ErrorInvalidRequest", f"The value of {name} is not valid ({exc}).") from exc
        written.changed.add(name)
    return written
