"""Namespaces, parsing and formatting shared by every operation."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

NSMAP = {"s": SOAP, "m": M, "t": T}

# Refusing DTDs and entities keeps a hostile request from expanding in memory.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)


class BadRequest(Exception):
    """The request is not well-formed SOAP: Exchange answers these with an HTTP 400-ish fault."""


def parse(data: bytes) -> etree._Element:
    try:
        return etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(str(exc)) from exc


def esc(text: str) -> str:
    return _escape(text)


def attr(value: str) -> str:
    """A quoted attribute value, quotes included."""
    return quoteattr(value)


def tq(name: str) -> str:
    return f"{{{T}}}{name}"


def mq(name: str) -> str:
    return f"{{{M}}}{name}"


def local(elem: etree._Element) -> str:
    return etree.QName(elem).localname


def child_text(elem: etree._Element, name: str, default: str | None = None) -> str | None:
    found = elem.find(tq(name))
    if found is None:
        found = elem.find(mq(name))
    if found is None:
        return default
    return found.text or ""


def parse_bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1")


def fmt_bool(value: bool) -> str:
    return "true" if value else "false"


def parse_dt(text: str, naive_tz: tzinfo | None = None) -> datetime:
    """An xs:dateTime as an aware UTC datetime.

    Exchange reads a value without an offset in the request's TimeZoneContext zone, else UTC.
    """
    text = text.strip()
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=naive_tz or UTC)
    return value.astimezone(UTC)


def fmt_dt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
