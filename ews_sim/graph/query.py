"""OData query options on event collections: ``$filter``, ``$select``, ``$expand``, ``$orderby``, ``$top``, ``$skip``.

``$filter`` is compiled to a predicate over stored items. It understands ``and``/``or``/``not``,
parentheses, ``eq ne gt ge lt le``, ``startswith``/``contains``/``endswith``, and the lambdas
``categories/any(c: c eq 'x')`` and ``singleValueExtendedProperties/any(ep: ep/id eq '...' and
ep/value eq '...')``. Strings compare case-insensitively, as Exchange does; an item lacking the
property fails every comparison. An extended-property lambda must name exactly one property by
id and restrict its value, or Graph refuses it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ews_sim.graph.errors import GraphError, bad_request
from ews_sim.graph.json import SHOW_AS, parse_ext_id
from ews_sim.store import CalendarItem, ext_key

Predicate = Callable[[CalendarItem], bool]

EXT_FILTER_MESSAGE = (
    "The filter expression for $filter does not match to a single extended property and a value restriction."
)
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<punct>[()/,:])|(?P<word>[A-Za-z_$@][\w.$@]*))"
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(text: str) -> datetime:
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    try:
        return _utc(datetime.fromisoformat(cleaned))
    except ValueError as exc:
        raise bad_request(f"Invalid filter clause: '{text}' is not a date and time.") from exc


# Event properties a filter may read, as Graph names them; times are compared as UTC instants.
FIELDS: dict[str, Callable[[CalendarItem], Any]] = {
    "subject": lambda i: i.subject,
    "iCalUId": lambda i: i.uid,
    "transactionId": lambda i: i.transaction_id,
    "showAs": lambda i: SHOW_AS.get(i.free_busy, "unknown"),
    "isAllDay": lambda i: i.is_all_day,
    "isCancelled": lambda i: i.is_cancelled,
    "isOrganizer": lambda i: i.is_organizer_copy,
    "isOnlineMeeting": lambda i: i.is_online_meeting,
    "importance": lambda i: i.importance.lower(),
    "sensitivity": lambda i: i.sensitivity.lower(),
    "type": lambda i: "singleInstance",
    "start/dateTime": lambda i: i.start,
    "end/dateTime": lambda i: i.end,
    "createdDateTime": lambda i: i.created,
    "lastModifiedDateTime": lambda i: i.modified,
    "location/displayName": lambda i: i.location,
    "organizer/emailAddress/address": lambda i: i.organizer.email if i.organizer else None,
    "body/content": lambda i: i.body,
}
_FIELDS_FOLDED = {k.lower(): k for k in FIELDS}
TIME_FIELDS = {"start/dateTime", "end/dateTime", "createdDateTime", "lastModifiedDateTime"}


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if not found or found.end() == pos:
            raise bad_request(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        kind = found.lastgroup or ""
        out.append(_Tok(kind, found.group(kind)))
        pos = found.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        n = self.pos + offset
        return self.toks[n] if n < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise bad_request(f"Invalid filter clause: unexpected end of '{self.text}'.")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() in words:
            self.pos += 1
            return tok.text.lower()
        return None

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise bad_request(f"Invalid filter clause: expected '{text}' but found '{tok.text}'.")

    # expression grammar ------------------------------------------------------------------------------

    def parse(self) -> Any:
        node = self.or_expr()
        if self.peek() is not None:
            raise bad_request(f"Invalid filter clause: unexpected '{self.peek().text}'.")  # type: ignore[union-attr]
        return node

    def or_expr(self) -> Any:
        node = self.and_expr()
        while self.keyword("or"):
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> Any:
        node = self.not_expr()
        while self.keyword("and"):
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> Any:
        if self.keyword("not"):
            return ("not", self.not_expr())
        return self.primary()

    def primary(self) -> Any:
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.take()
            node = self.or_expr()
            self.expect(")")
            return node
        if tok is not None and tok.kind == "word" and tok.text.lower() in ("startswith", "endswith", "contains"):
            nxt = self.peek(1)
            if nxt is not None and nxt.text == "(":
                self.pos += 2
                left = self.operand()
                self.expect(",")
                right = self.operand()
                self.expect(")")
                return ("call", tok.text.lower(), left, right)
        left = self.operand()
        if isinstance(left, tuple) and left[0] in ("any", "all"):
            return left
        op = self.keyword(*_COMPARE)
        if op is None:
            raise bad_request(f"Invalid filter clause: expected a comparison in '{self.text}'.")
        return ("cmp", op, left, self.operand())

    def operand(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return ("lit", tok.text[1:-1].replace("''", "'"))
        if tok.kind == "number":
            return ("lit", float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "datetime":
            return ("lit", _parse_time(tok.text))
        if tok.kind != "word":
            raise bad_request(f"Invalid filter clause: unexpected '{tok.text}'.")
        low = tok.text.lower()
        if low in ("true", "false"):
            return ("lit", low == "true")
        if low == "null":
            return ("lit", None)
        parts = [tok.text]
        while self.peek() is not None and self.peek().text == "/":  # type: ignore[union-attr]
            self.take()
            seg = self.take()
            if seg.kind != "word":
                raise bad_request(f"Invalid filter clause: unexpected '{seg.text}' in a property path.")
            if seg.text.lower() in ("any", "all") and self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                self.take()
                var = self.take().text
                self.expect(":")
                body = self.or_expr()
                self.expect(")")
                return ("any" if seg.text.lower() == "any" else "all", "/".join(parts), var, body)
            parts.append(seg.text)
        return ("path", "/".join(parts))


# --- compiling ---------------------------------------------------------------------------------------


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _comparable(field: str, literal: Any) -> Any:
    if field in TIME_FIELDS and isinstance(literal, str):
        return _parse_time(literal)
    if isinstance(literal, datetime):
        return _utc(literal)
    return _fold(literal)


def _compare(op: str, value: Any, wanted: Any) -> bool:
    if wanted is None:  # "eq null" / "ne null" test presence
        return (value is None) if op == "eq" else (value is not None) if op == "ne" else False
    if value is None:
        return False  # as Exchange: a missing property fails every comparison, "ne" included
    try:
        return bool(_COMPARE[op](_fold(value), wanted))
    except TypeError:
        return False


def _field(path: str) -> str:
    name = _FIELDS_FOLDED.get(path.lower())
    if name is None:
        first = path.split("/")[0]
        raise bad_request(f"Could not find a property named '{first}' on type 'microsoft.graph.event'.")
    return name


def _compile(node: Any) -> Predicate:
    kind = node[0]
    if kind in ("and", "or"):
        left, right = _compile(node[1]), _compile(node[2])
        if kind == "and":
            return lambda i: left(i) and right(i)
        return lambda i: left(i) or right(i)
    if kind == "not":
        inner = _compile(node[1])
        return lambda i: not inner(i)
    if kind == "cmp":
        op, left, right = node[1], node[2], node[3]
        if left[0] == "lit" and right[0] == "path":
            left, right = right, left
            op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
        if left[0] != "path" or right[0] != "lit":
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        name = _field(left[1])
        get, wanted = FIELDS[name], _comparable(name, right[1])
        return lambda i: _compare(op, get(i), wanted)
    if kind == "call":
        func, left, right = node[1], node[2], node[3]
        if left[0] != "path" or right[0] != "lit" or not isinstance(right[1], str):
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        get, needle = FIELDS[_field(left[1])], right[1].casefold()
        test = {"startswith": str.startswith, "endswith": str.endswith, "contains": str.__contains__}[func]
        return lambda i: isinstance(get(i), str) and test(get(i).casefold(), needle)
    if kind in ("any", "all"):
        return _lambda(node)
    raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")


def _lambda(node: Any) -> Predicate:
    kind, collection, var, body = node
    collection = collection.lower()
    if collection == "categories":
        test = _var_test(body, var)

        def categories(item: CalendarItem) -> bool:
            values = [test(c) for c in item.categories]
            return any(values) if kind == "any" else all(values)

        return categories
    if collection in ("singlevalueextendedproperties", "multivalueextendedproperties") and kind == "any":
        return _ext_lambda(body, var, multi=collection.startswith("multi"))
    raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")


def _var_test(body: Any, var: str) -> Callable[[str], bool]:
    """``c eq 'x'`` inside ``categories/any(c: ...)``."""
    if body[0] != "cmp" or body[2] != ("path", var) or body[3][0] != "lit":
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
    op, wanted = body[1], _fold(body[3][1])
    return lambda value: _compare(op, value, wanted)


def _ext_lambda(body: Any, var: str, multi: bool) -> Predicate:
    """``ep/id eq '<id>' and ep/value <op> '<v>'`` (either order): the one form Graph accepts."""
    clauses = [body[1], body[2]] if body[0] == "and" else [body]
    ids = [c for c in clauses if c[0] == "cmp" and c[2] == ("path", f"{var}/id")]
    values = [c for c in clauses if c not in ids]
    if len(clauses) != 2 or len(ids) != 1 or ids[0][1] != "eq" or ids[0][3][0] != "lit":
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", EXT_FILTER_MESSAGE)
    attrs = parse_ext_id(ids[0][3][1])
    key, kind = ext_key(attrs), attrs.get("PropertyType", "String").lower()
    clause = values[0]
    if clause[0] == "cmp" and clause[2] == ("path", f"{var}/value") and clause[3][0] == "lit":
        op, literal = clause[1], clause[3][1]
        wanted = _typed(kind, literal)

        def matches(item: CalendarItem) -> bool:
            found = item.extended.get(key)
            if found is None:
                return False
            stored = found.value if isinstance(found.value, list) else [found.value]
            return any(_compare(op, _typed(kind, v, strict=False), wanted) for v in stored)

        return matches
    if clause[0] == "call" and clause[2] == ("path", f"{var}/value") and clause[3][0] == "lit":
        func, needle = clause[1], str(clause[3][1]).casefold()
        test = {"startswith": str.startswith, "endswith": str.endswith, "contains": str.__contains__}[func]

        def contains(item: CalendarItem) -> bool:
            found = item.extended.get(key)
            stored = [] if found is None else found.value if isinstance(found.value, list) else [found.value]
            return any(test(v.casefold(), needle) for v in stored)

        return contains
    raise GraphError(400, "ErrorInvalidUrlQueryFilter", EXT_FILTER_MESSAGE)


def _typed(kind: str, value: Any, strict: bool = True) -> Any:
    """A value of an extended property of type ``kind`` in comparable form (strings fold case)."""
    try:
        if kind in ("integer", "long", "short"):
            return int(value)
        if kind in ("double", "float", "currency"):
            return float(value)
        if kind == "boolean":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if kind == "systemtime":
            return value if isinstance(value, datetime) else _parse_time(str(value))
    except (ValueError, GraphError):
        if strict:
            raise bad_request(f"Invalid filter clause: '{value}' is not a {kind} value.") from None
        return None
    return _fold(value) if isinstance(value, str) else value


def compile_filter(text: str) -> Predicate:
    return _compile(_Parser(text).parse())


# --- $select, $expand, $orderby, $top, $skip -----------------------------------------------------------

EXPANDABLE = {
    "singlevalueextendedproperties": "singleValueExtendedProperties",
    "multivalueextendedproperties": "multiValueExtendedProperties",
}


def parse_select(text: str | None, declared: set[str]) -> set[str] | None:
    if not text:
        return None
    folded = {d.lower(): d for d in declared}
    chosen = set()
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        found = folded.get(name.lower())
        if found is None:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.event'.",
            )
        chosen.add(found)
    return chosen


def _split_top_level(text: str) -> list[str]:
    parts, depth, current, quoted = [], 0, [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_EXPAND = re.compile(r"^(\w+)\s*(?:\(\s*\$filter\s*=\s*(.*)\)\s*)?$", re.DOTALL)


def parse_expand(text: str | None) -> dict[str, list[str] | None] | None:
    """``singleValueExtendedProperties($filter=id eq 'a' or id eq 'b')`` -> {nav: ['a', 'b']}; no filter -> None."""
    if not text:
        return None
    out: dict[str, list[str] | None] = {}
    for part in _split_top_level(text):
        found = _EXPAND.match(part)
        nav = EXPANDABLE.get(found.group(1).lower()) if found else None
        if found is None or nav is None:
            name = found.group(1) if found else part
            raise bad_request(f"Could not find a property named '{name}' on type 'microsoft.graph.event'.")
        if found.group(2) is None:
            out[nav] = None
            continue
        ids = []
        node = _Parser(found.group(2)).parse()
        stack = [node]
        while stack:
            current = stack.pop()
            if current[0] == "or":
                stack.extend([current[2], current[1]])
            elif current[0] == "cmp" and current[1] == "eq" and current[2] == ("path", "id") and current[3][0] == "lit":
                ids.append(str(current[3][1]))
            else:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", EXT_FILTER_MESSAGE)
        for wanted in ids:
            parse_ext_id(wanted)
        out[nav] = ids
    return out


ORDERABLE: dict[str, Callable[[CalendarItem], Any]] = {
    "start/dateTime": lambda i: i.start,
    "end/dateTime": lambda i: i.end,
    "createdDateTime": lambda i: i.created,
    "lastModifiedDateTime": lambda i: i.modified,
    "subject": lambda i: i.subject.casefold(),
}


def order(found: list[CalendarItem], text: str | None) -> list[CalendarItem]:
    if not text:
        return found
    folded = {k.lower(): k for k in ORDERABLE}
    for part in reversed(_split_top_level(text)):
        name, _, direction = part.partition(" ")
        key = folded.get(name.strip().lower())
        if key is None:
            raise bad_request(f"Could not find a property named '{name.strip()}' on type 'microsoft.graph.event'.")
        found = sorted(found, key=ORDERABLE[key], reverse=direction.strip().lower() == "desc")
    return found


def int_option(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"Invalid {name} value '{text}'.") from None
    if value < low:
        raise bad_request(f"Invalid {name} value '{text}'.")
    return min(value, high)
