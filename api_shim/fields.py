"""Field types the contract shares: lenient booleans, ISO 8601 times normalised to UTC, e-mail addresses."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, StringConstraints, ValidationInfo, WithJsonSchema

from downsync.settings import get_settings

# Whitespace is spelled out (ASCII only), never ``\s``: Python's and JSON Schema's (ECMA) differ, and the schema must
# say exactly what the validators take.
SPACE = " \t\n\r\f\v"
_W = r"[ \t\n\r\f\v]"
# No control characters in an address: no mail system carries them, and EWS's XML cannot.
_EMAIL = re.compile(r"^[^@ ,;<>\"\x00-\x1f\x7f]+@[^@ ,;<>\"\x00-\x1f\x7f]+\.[^@ ,;<>\"\x00-\x1f\x7f]+$")
# What a date-time may look like: a date and a time, seconds and fractions optional, then Z, an offset, or nothing
# (UTC). A space before the offset is an unencoded "+" from a query string.
_TIME_SHAPE = (
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
    r"([Zz]|[+\- ]([01]\d|2[0-3]):[0-5]\d|[+-]([01]\d|2[0-3])[0-5]\d)?"
)


def _years(low: int, high: int) -> str:
    """A regular expression matching exactly the four-digit years from ``low`` to ``high``."""
    parts = []
    year = low
    while year <= high:
        for step in (1000, 100, 10, 1):
            if year % step == 0 and year + step - 1 <= high:
                break
        digits = len(str(step)) - 1
        parts.append(f"{year:04d}"[: 4 - digits] + r"\d" * digits)
        year += step
    return "(" + "|".join(parts) + ")"


def time_pattern() -> str:
    settings = get_settings()
    return rf"^{_W}*{_years(settings.min_year, settings.max_year)}{_TIME_SHAPE}{_W}*$"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip(SPACE).lower() in ("true", "false"):
        return value.strip(SPACE).lower() == "true"
    raise ValueError('must be true or false (JSON or the strings "true" / "false")')


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string such as 2020-10-16T10:00:00Z")
    if not re.match(rf"^{_W}*\d{{4}}{_TIME_SHAPE}{_W}*$", value):
        raise ValueError("must be an ISO 8601 date-time such as 2020-10-16T10:00:00Z")
    text = value.strip(SPACE)
    # An unencoded "+02:00" in a query string arrives as " 02:00".
    if len(text) > 19 and text[-6] == " " and text[-5:-3].isdigit():
        text = text[:-6] + "+" + text[-5:]
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC).replace(microsecond=0)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves year 1 or 9999 off the calendar
        raise ValueError("must be an ISO 8601 date-time such as 2020-10-16T10:00:00Z") from None
    settings = get_settings()
    if not settings.min_year <= parsed.year <= settings.max_year:
        raise ValueError(f"must be between the years {settings.min_year} and {settings.max_year}")
    return parsed


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an e-mail address")
    if not value.strip(SPACE):
        raise ValueError("must not be empty")
    if len(value) > 320 or not _EMAIL.match(value.strip(SPACE)):
        raise ValueError(f"{value!r} is not a valid e-mail address")
    return value.strip(SPACE)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The schemas say exactly what the validators take, so the document (and schemathesis) can be trusted. The seeds
# send booleans as strings: the schema admits them, so their own examples validate.
BOOL_SCHEMA = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "pattern": rf"^{_W}*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]){_W}*$"},
    ]
}
Bool = Annotated[bool, BeforeValidator(_bool), WithJsonSchema(BOOL_SCHEMA)]
UtcTime = Annotated[
    datetime,
    BeforeValidator(_time),
    PlainSerializer(format_time, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": time_pattern(),
            "description": "ISO 8601, e.g. 2020-10-16T10:00:00Z; Z or an offset (converted to UTC), none means UTC; "
            "fractions of a second dropped",
        }
    ),
]
EMAIL_SCHEMA = {"type": "string", "maxLength": 320, "pattern": f"^{_W}*{_EMAIL.pattern[1:-1]}{_W}*$"}
Email = Annotated[str, BeforeValidator(_email), WithJsonSchema(EMAIL_SCHEMA)]


def _trimmed(most: int, at_least_one: bool) -> Any:
    """A string stripped of surrounding whitespace, then at most ``most`` characters long (and one at least)."""
    visible = r"[^ \t\n\r\f\v]"
    core = rf"{visible}([\s\S]{{0,{most - 2}}}{visible})?"
    pattern = rf"^{_W}*{core if at_least_one else f'({core})?'}{_W}*$"

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be Unicode text (it holds a lone surrogate)") from None
        text = value.strip(SPACE)
        if at_least_one and not text:
            raise ValueError("must not be empty")
        if len(text) > most:
            raise ValueError(f"must be at most {most} characters")
        return text

    return BeforeValidator(check), WithJsonSchema({"type": "string", "pattern": pattern})


EventId = Annotated[str, *_trimmed(255, True)]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]
ShortText = Annotated[str, StringConstraints(max_length=255)]
CorrelationId = Annotated[str, *_trimmed(200, False)]


def end_after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    """For a field validator on endTime, so the error's location (and ``details``) names endTime."""
    start = info.data.get("startTime")
    if end is not None and start is not None and end <= start:
        raise ValueError("must be after startTime")
    return end
