"""What the Graph tests share: addresses, an extended property id and request bodies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"
CAROL = "carol@contoso.com"
DAVE = "dave@contoso.com"
PROP_SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"
EVENT_ID = f"String {{{PROP_SET}}} Name DownsyncEventId"
KIND = f"String {{{PROP_SET}}} Name DownsyncKind"


def event(
    subject: str = "Graph test",
    start: str = "2030-01-07T09:00:00",
    minutes: int = 60,
    zone: str = "UTC",
    attendees: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A create-event body: ``start`` local to ``zone``, ``minutes`` long."""
    begin = datetime.fromisoformat(start)
    body: dict[str, Any] = {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": (begin + timedelta(minutes=minutes)).isoformat(), "timeZone": zone},
    }
    if attendees is not None:
        body["attendees"] = [{"emailAddress": {"address": a}, "type": "required"} for a in attendees]
    body.update(extra)
    return body


def tagged(event_id: str, **extra: Any) -> dict[str, Any]:
    return event(singleValueExtendedProperties=[{"id": EVENT_ID, "value": event_id}], **extra)


def error(response: httpx.Response) -> tuple[int, str, str]:
    """(status, Graph error code, message) of a failed call, after checking Graph's error shape."""
    body = response.json()
    inner = body["error"]["innerError"]
    assert {"date", "request-id", "client-request-id"} <= set(inner), body
    return response.status_code, body["error"]["code"], body["error"]["message"]
