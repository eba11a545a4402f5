"""Free/busy through Graph's getSchedule: at most 20 schedules and under 62 days a request, run by the core's
deadline-bound lookup; the answer is read with plain ``json``, only the fields availability needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from downsync.backends.graph.client import GraphClient
from downsync.backends.graph.events import parse_time
from downsync.core import availability
from downsync.core.errors import MAILBOX_NOT_FOUND, PermanentError
from downsync.core.model import Busy, FreeBusy

MAX_SCHEDULES = 20
MAX_WINDOW = timedelta(days=61)  # Graph takes windows shorter than 62 days
# Graph's showAs words in Exchange's free/busy words, which the tenant's busy types name.
STATUS = {
    "free": "Free",
    "tentative": "Tentative",
    "busy": "Busy",
    "oof": "OOF",
    "workingElsewhere": "WorkingElsewhere",
    "unknown": "NoData",
}
# Exchange Online's code for an address it cannot resolve ("5009"), as the contract reports any unknown mailbox.
UNRESOLVED = {"5009", "ErrorMailRecipientNotFound", "ErrorInvalidUser"}


def _time(value: datetime) -> dict[str, str]:
    return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def _answer(entry: dict[str, Any]) -> FreeBusy:
    error = entry.get("error")
    if error:
        code = str(error.get("responseCode") or "ErrorFreeBusyGenerationFailed")
        message = str(error.get("message") or "")
        return FreeBusy(MAILBOX_NOT_FOUND if code in UNRESOLVED else code, message)
    return FreeBusy(
        spans=[
            Busy(parse_time(item["start"]), parse_time(item["end"]), STATUS.get(item.get("status", ""), "NoData"))
            for item in entry.get("scheduleItems") or []
        ]
    )


class FetchSchedules:
    """One getSchedule: each schedule's busy items or error. It is asked through the first mailbox of the piece
    that Graph lets the app reach (free/busy of the others is visible across the organisation)."""

    def __call__(self, client: GraphClient, piece: availability.Piece, timeout: float) -> dict[str, FreeBusy]:
        end = max(piece.end, piece.start + timedelta(minutes=5))
        minutes = int((end - piece.start).total_seconds() // 60)
        body = {
            "schedules": list(piece.mailboxes),
            "startTime": _time(piece.start),
            "endTime": _time(end),
            "availabilityViewInterval": max(5, min(1440, minutes)),
        }
        answers: dict[str, FreeBusy] = {}
        for asker in piece.mailboxes:
            try:
                result = client.call("POST", f"/users/{quote(asker, safe='@')}/calendar/getSchedule", asker, body=body)
            except PermanentError as error:
                # This mailbox cannot ask (unknown, on-premises, outside the app's policy): let the next one ask.
                answers[asker] = FreeBusy(error.code, error.message)
                continue
            for entry in result.get("value", []):
                answers.setdefault(str(entry.get("scheduleId", "")).lower(), _answer(entry))
            break
        return {
            m: answers.get(m.lower(), FreeBusy("ErrorFreeBusyGenerationFailed", "Graph did not answer for it"))
            for m in piece.mailboxes
        }


class GraphAvailability:
    def __init__(
        self, client: GraphClient, tenant_id: int, concurrency: int, fetch: FetchSchedules | None = None
    ) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.concurrency = concurrency
        self.fetch = fetch or FetchSchedules()

    def __call__(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        work = availability.pieces(mailboxes, start, end, MAX_SCHEDULES, MAX_WINDOW)
        slots = availability.tenant_slots(("graph", self.tenant_id), self.concurrency)
        return availability.lookup(
            lambda piece, timeout: self.fetch(self.client, piece, timeout),
            work,
            mailboxes,
            deadline,
            slots,
            self.concurrency,
        )
