"""What the API's schema cannot say, told to schemathesis: rules across fields, the calendar, and stored state.

An OpenAPI schema cannot say that ``endTime`` comes after ``startTime`` (for a meeting PATCH: after the stored start),
that ``2026-02-30`` is no date, that an availability window runs forwards and at most 366 days, that a cursor must be
one the service returned, or that a webhook's URL must name a host that resolves. Data breaking only those rules is
schema-valid yet rightly refused (422), so each generated case is brought within them (every phase applies case
hooks); every other field is fuzzed as the schema allows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import schemathesis

from api_shim.fields import _time, time_pattern
from api_shim.webhooks.schemas import URL_PATTERN

SHAPE = re.compile(time_pattern())
WEBHOOK_URL = re.compile(URL_PATTERN)
MAX_WINDOW = timedelta(days=366)
FALLBACK = "2020-10-16T10:00:00Z"


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _calendar(container: dict[str, Any], *keys: str) -> None:
    """A schema-valid time that is no calendar time (30 February, 24:00, a year pushed out of range by its offset)
    becomes a plain valid one."""
    for key in keys:
        value = container.get(key)
        if isinstance(value, str) and SHAPE.match(value):
            try:
                _time(value)
            except ValueError:
                container[key] = FALLBACK


def _parsed(value: Any) -> datetime | None:
    if not isinstance(value, str) or not SHAPE.match(value):
        return None
    try:
        return _time(value)
    except ValueError:
        return None


def _valid(value: datetime) -> bool:
    return _parsed(_stamp(value)) is not None


def _forwards(state: Any, both: bool = False) -> None:
    if not isinstance(state, dict):
        return
    _calendar(state, "startTime", "endTime")
    start, end = _parsed(state.get("startTime")), _parsed(state.get("endTime"))
    if both and end and "startTime" not in state:
        start = end - timedelta(hours=1)
    elif both and start and "endTime" not in state:
        end = start + timedelta(hours=1)
    if start and end and (end <= start or not _valid(start) or not _valid(end)):
        # Keep the one given inside the years allowed; put the other an hour beside it.
        anchor = start if _valid(start) else end
        hour = timedelta(hours=1)
        start, end = (anchor, anchor + hour) if _valid(anchor + hour) else (anchor - hour, anchor)
    if start and end and (both or ("startTime" in state and "endTime" in state)):
        state["startTime"], state["endTime"] = _stamp(start), _stamp(end)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    body, query = case.body, case.query
    if isinstance(body, dict):
        patch = case.method.upper() == "PATCH"
        # A meeting PATCH moving only one end is checked against the stored meeting: move both ends together.
        _forwards(body, both=patch)
        _forwards(body.get("new"))
        if isinstance(body.get("original"), dict):
            _calendar(body["original"], "startTime", "endTime")
    url = body.get("url") if isinstance(body, dict) else None
    if case.path.endswith("/webhooks") and isinstance(url, str) and WEBHOOK_URL.match(url) and len(url) <= 2000:
        # A callback URL must also name a host that resolves (to a public address in production): DNS, not the
        # schema. One of the schema's shape becomes one that resolves here (private addresses are allowed in tests).
        body["url"] = "http://127.0.0.1:9/fuzzed"
    if isinstance(query, dict):
        # A cursor is opaque: only one the service returned is valid, and none can be generated.
        query.pop("cursor", None)
        _calendar(query, "from", "to", "since")
        start, end = _parsed(query.get("from")), _parsed(query.get("to"))
        if start and end and (end <= start or end - start > MAX_WINDOW):
            query["to"] = _stamp(start + timedelta(days=1))
            if _parsed(query["to"]) is None:
                query["from"], query["to"] = FALLBACK, _stamp(_time(FALLBACK) + timedelta(days=1))
    return case
