"""Field types the contract shares: lenient booleans, ISO 8601 times normalised to UTC, e-mail addresses."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, StringConstraints, ValidationInfo

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError('must be true or false (JSON or the strings "true" / "false")')


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string such as 2020-10-16T10:00:00Z")
    text = value.strip()
    # An unencoded "+02:00" in a query string arrives as " 02:00".
    if len(text) > 19 and text[-6] == " " and text[-5:-3].isdigit():
        text = text[:-6] + "+" + text[-5:]
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time such as 2020-10-16T10:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an e-mail address")
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > 320 or not _EMAIL.match(value.strip()):
        raise ValueError(f"{value!r} is not a valid e-mail address")
    return value.strip()


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Bool = Annotated[bool, BeforeValidator(_bool)]
UtcTime = Annotated[datetime, BeforeValidator(_time), PlainSerializer(format_time, return_type=str)]
Email = Annotated[str, BeforeValidator(_email)]
EventId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]
ShortText = Annotated[str, StringConstraints(max_length=255)]
CorrelationId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def end_after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    """For a field validator on endTime, so the error's location (and ``details``) names endTime."""
    start = info.data.get("startTime")
    if end is not None and start is not None and end <= start:
        raise ValueError("must be after startTime")
    return end
