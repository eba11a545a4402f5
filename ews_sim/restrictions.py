"""FindItem restrictions compiled to predicates over stored items.

Comparisons follow the store's rules: a property the item lacks fails every comparison
(IsNotEqualTo included), and strings compare case-insensitively.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, tzinfo

from lxml import etree

from ews_sim import items
from ews_sim.ops.base import MessageError
from ews_sim.store import CalendarItem, ext_key
from ews_sim.xmlutil import local, parse_bool, parse_dt, tq

Predicate = Callable[[CalendarItem], bool]

_COMPARE = {
    "IsEqualTo": operator.eq,
    "IsNotEqualTo": operator.ne,
    "IsGreaterThan": operator.gt,
    "IsGreaterThanOrEqualTo": operator.ge,
    "IsLessThan": operator.lt,
    "IsLessThanOrEqualTo": operator.le,
}

Getter = Callable[[CalendarItem], object]


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
        if uri not in items.FIELD_GETTERS:
            raise MessageError("ErrorUnsupportedPathForQuery", f"The property {uri} cannot be used in a restriction.")
        return (lambda item: items.field_value(item, uri)), (lambda text: items.parse_constant(uri, text, zone))
    if name == "ExtendedFieldURI":
        key, kind = ext_key(dict(elem.attrib)), elem.get("PropertyType", "String")

        def get(item: CalendarItem) -> object:
            found = item.extended.get(key)
            if found is None or isinstance(found.value, list):
                return None
            try:
                return _typed(kind, found.value, zone)
            except ValueError:
                return None

        return get, (lambda text: _typed(kind, text, zone))
    raise MessageError("ErrorUnsupportedPathForQuery", f"{name} is not supported in a restriction.")


def _fold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def compile_restriction(elem: etree._Element, zone: tzinfo | None) -> Predicate:
    name = local(elem)
    kids = list(items.iter_children(elem))
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
            try:
                return bool(compare(_fold(value), wanted))
            except TypeError:
                return False

        return check
    if name == "Contains":
        get, _ = _path(kids[0], zone)
        const = elem.find(tq("Constant"))
        needle = (const.get("Value", "") if const is not None else "").casefold()
        mode = elem.get("ContainmentMode", "Substring")

        def contains(item: CalendarItem) -> bool:
            value = get(item)
            if not isinstance(value, str):
                return False
            hay = value.casefold()
            if mode == "FullString":
                return hay == needle
            if mode == "Prefixed":
                return hay.startswith(needle)
            return needle in hay

        return contains
    raise MessageError("ErrorUnsupportedQueryFilter", f"The restriction {name} is not supported.")


def sort_key(uri: str) -> Callable[[CalendarItem], tuple[bool, object]]:
    def key(item: CalendarItem) -> tuple[bool, object]:
        value = items.field_value(item, uri)
        if isinstance(value, str):
            value = value.casefold()
        return (value is None, value if value is not None else datetime.min)

    return key
