"""FindItem restrictions compiled to predicates over stored items, and the properties they may search.

Comparisons follow the store's rules: a property the item lacks fails every comparison
(IsNotEqualTo included), and strings compare case-insensitively. A multi-valued property
(``item:Categories``, a multi-valued extended property) matches when any one of its values does,
as a MAPI restriction on a multi-valued property does: ``Categories IsEqualTo "Red"`` finds every
item with a Red category among others.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, tzinfo

from lxml import etree

from ews_sim.items import iter_children
from ews_sim.ops.base import MessageError
from ews_sim.store import CalendarItem, ext_key
from ews_sim.xmlutil import local, parse_bool, parse_dt, tq

Predicate = Callable[[CalendarItem], bool]
Getter = Callable[[CalendarItem], object]

_COMPARE = {
    "IsEqualTo": operator.eq,
    "IsNotEqualTo": operator.ne,
    "IsGreaterThan": operator.gt,
    "IsGreaterThanOrEqualTo": operator.ge,
    "IsLessThan": operator.lt,
    "IsLessThanOrEqualTo": operator.le,
}

# What a restriction or a sort order may name: the property's value, None when the item has none.
FIELD_GETTERS: dict[str, Getter] = {
    "item:Subject": lambda i: i.subject,
    "item:Body": lambda i: i.body,
    "item:ItemClass": lambda i: "IPM.Appointment",
    "item:Sensitivity": lambda i: i.sensitivity,
    "item:Importance": lambda i: i.importance,
    "item:DateTimeCreated": lambda i: i.created,
    "item:DateTimeReceived": lambda i: i.created,
    "item:LastModifiedTime": lambda i: i.modified,
    "item:Categories": lambda i: list(i.categories) or None,
    "item:InReplyTo": lambda i: i.in_reply_to,
    "item:Culture": lambda i: i.culture,
    "item:ReminderIsSet": lambda i: i.reminder_is_set,
    "item:ReminderMinutesBeforeStart": lambda i: i.reminder_minutes,
    "item:ReminderDueBy": lambda i: i.reminder_due_by or i.start,
    "calendar:UID": lambda i: i.uid,
    "calendar:Start": lambda i: i.start,
    "calendar:End": lambda i: i.end,
    "calendar:IsAllDayEvent": lambda i: i.is_all_day,
    "calendar:LegacyFreeBusyStatus": lambda i: i.free_busy,
    "calendar:Location": lambda i: i.location,
    "calendar:When": lambda i: i.when,
    "calendar:IsMeeting": lambda i: i.is_meeting,
    "calendar:IsCancelled": lambda i: i.is_cancelled,
    "calendar:IsRecurring": lambda i: i.is_recurring,
    "calendar:CalendarItemType": lambda i: i.calendar_item_type,
    "calendar:MyResponseType": lambda i: i.my_response,
    "calendar:ConferenceType": lambda i: i.conference_type,
    "calendar:MeetingWorkspaceUrl": lambda i: i.meeting_workspace_url,
    "calendar:NetShowUrl": lambda i: i.net_show_url,
    "calendar:Organizer": lambda i: i.organizer.email if i.organizer else None,
}
FIELD_TYPES: dict[str, type] = {
    "item:DateTimeCreated": datetime,
    "item:DateTimeReceived": datetime,
    "item:LastModifiedTime": datetime,
    "item:ReminderDueBy": datetime,
    "calendar:Start": datetime,
    "calendar:End": datetime,
    "item:ReminderIsSet": bool,
    "calendar:IsAllDayEvent": bool,
    "calendar:IsMeeting": bool,
    "calendar:IsCancelled": bool,
    "calendar:IsRecurring": bool,
    "item:ReminderMinutesBeforeStart": int,
    "calendar:ConferenceType": int,
}


def field_value(item: CalendarItem, uri: str) -> object:
    """A property's value for restrictions and sorting, or None when unset."""
    getter = FIELD_GETTERS.get(uri)
    return getter(item) if getter else None


def parse_constant(uri: str, text: str, zone: tzinfo | None) -> object:
    """A restriction's constant, typed like the property it is compared with."""
    sample = FIELD_TYPES.get(uri, str)
    if sample is datetime:
        return parse_dt(text, zone)
    if sample is bool:
        return parse_bool(text)
    if sample is int:
        return int(text)
    return text


def _typed(kind: str, text: str, zone: tzinfo | None) -> object:
    if kind in ("SystemTime",):
        return parse_dt(text, zone)
    if kind in ("Integer", "Long", "Short"):
        return int(text)
    if kind in ("Double", "Float", "Currency"):
        return float(text)
    if kind == "Boolean":
        return parse_bool(text)
    return text


def _path(elem: etree._Element, zone: tzinfo | None) -> tuple[Getter, Callable[[str], object]]:
    name = local(elem)
    if name == "FieldURI":
        uri = elem.get("FieldURI", "")
        if uri not in FIELD_GETTERS:
            raise MessageError("ErrorUnsupportedPathForQuery", f"The property {uri} cannot be used in a restriction.")
        return (lambda item: field_value(item, uri)), (lambda text: parse_constant(uri, text, zone))
    if name == "ExtendedFieldURI":
        key, kind = ext_key(dict(elem.attrib)), elem.get("PropertyType", "String")
        kind = kind.removesuffix("Array")

        def get(item: CalendarItem) -> object:
            found = item.extended.get(key)
            if found is None:
                return None
            try:
                if isinstance(found.value, list):
                    return [_typed(kind, v, zone) for v in found.value] or None
                return _typed(kind, found.value, zone)
            except ValueError:
                return None

        return get, (lambda text: _typed(kind, text, zone))
    raise MessageError("ErrorUnsupportedPathForQuery", f"{name} is not supported in a restriction.")


def _fold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _values(value: object) -> list[object]:
    """A property's values: one, or each of a multi-valued property's."""
    return value if isinstance(value, list) else [value]


def compile_restriction(elem: etree._Element, zone: tzinfo | None) -> Predicate:
    name = local(elem)
    kids = list(iter_children(elem))
    if name in ("And", "Or"):
        parts = [compile_restriction(k, zone) for k in kids]
        combine = all if name == "And" else any
        return lambda item: combine(p(item) for p in parts)
    if name == "Not":
        inner = compile_restriction(kids[0], zone)
        return lambda item: not inner(item)
    if name == "Exists":
        get, _ = _path(kids[0], zone)
        return lambda item: get(item) is not None
    if name in _COMPARE:
        return _comparison(name, elem, kids, zone)
    if name == "Contains":
        return _contains(elem, kids, zone)
    raise MessageError("ErrorUnsupportedQueryFilter", f"The restriction {name} is not supported.")


def _comparison(name: str, elem: etree._Element, kids: list[etree._Element], zone: tzinfo | None) -> Predicate:
    get, parse = _path(kids[0], zone)
    holder = elem.find(tq("FieldURIOrConstant"))
    const = holder.find(tq("Constant")) if holder is not None else None
    if const is None:
        raise MessageError("ErrorUnsupportedQueryFilter", "Only constants may be compared with.")
    try:
        wanted = _fold(parse(const.get("Value", "")))
    except ValueError as exc:
        raise MessageError("ErrorInvalidValueForProperty", str(exc)) from exc
    compare = _COMPARE[name]

    def check(item: CalendarItem) -> bool:
        value = get(item)
        if value is None:
            return False
        for one in _values(value):
            try:
                if compare(_fold(one), wanted):
                    return True
            except TypeError:
                continue
        return False

    return check


def _contains(elem: etree._Element, kids: list[etree._Element], zone: tzinfo | None) -> Predicate:
    get, _ = _path(kids[0], zone)
    const = elem.find(tq("Constant"))
    needle = (const.get("Value", "") if const is not None else "").casefold()
    mode = elem.get("ContainmentMode", "Substring")

    def matches(hay: str) -> bool:
        if mode == "FullString":
            return hay == needle
        if mode == "Prefixed":
            return hay.startswith(needle)
        return needle in hay

    def contains(item: CalendarItem) -> bool:
        value = get(item)
        return any(isinstance(v, str) and matches(v.casefold()) for v in _values(value) if v is not None)

    return contains


def sort_key(uri: str) -> Callable[[CalendarItem], tuple[bool, object]]:
    def key(item: CalendarItem) -> tuple[bool, object]:
        value = field_value(item, uri)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str):
            value = value.casefold()
        return (value is None, value if value is not None else datetime.min)

    return key
