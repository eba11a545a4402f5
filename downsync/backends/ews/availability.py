"""Free/busy through EWS: GetUserAvailability as the tenant's service account (no impersonation), in pieces of
at most 100 mailboxes and 42 days, run by the core's deadline-bound lookup."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.properties import FreeBusyViewOptions, MailboxData, TimeWindow, TimeZone
from exchangelib.protocol import Protocol
from exchangelib.services import GetServerTimeZones, GetUserAvailability

from downsync.backends.ews.connection import Connection, configuration
from downsync.backends.ews.errors import raising
from downsync.core import availability
from downsync.core.errors import GatewayError
from downsync.core.model import Busy, FreeBusy

MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
EWS_UTC = EWSTimeZone("UTC")


def protocol(connection: Connection) -> Protocol:
    return Protocol(config=configuration(connection))


_zones: dict[tuple[Connection, int], TimeZone] = {}
_zones_lock = threading.Lock()


def utc_zone(connection: Connection, year: int, timeout: float) -> TimeZone:
    """The request's time zone, built from the server's own UTC definition once per tenant and year, not
    fetched again with every lookup as exchangelib's get_free_busy_info does. The network call is made
    outside any shared lock, so one slow tenant never holds up another's lookups."""
    with _zones_lock:
        cached = _zones.get((connection, year))
    if cached is not None:
        return cached
    service = GetServerTimeZones(protocol=protocol(connection), timeout=timeout)
    [definition] = service.call(timezones=[EWS_UTC], return_full_timezone_data=True)
    zone = TimeZone.from_server_timezone(tz_definition=definition, for_year=year)
    with _zones_lock:
        return _zones.setdefault((connection, year), zone)


def _ews(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


TNS = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def _time(text: str) -> datetime:
    # Exchange writes event times in the request's time zone (UTC here), without an offset.
    value = datetime.fromisoformat(text[:-1] if text.endswith("Z") else text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SpansOnly(GetUserAvailability):
    """exchangelib's GetUserAvailability (request, transport, errors), reading from each mailbox's answer only the
    three fields availability needs: building exchangelib's objects for every event cost most of a lookup."""

    def _elem_to_obj(self, elem: Any) -> list[Busy]:
        events = elem.find(f"{TNS}CalendarEventArray")
        if events is None:
            return []
        return [
            Busy(
                _time(event.findtext(f"{TNS}StartTime")),
                _time(event.findtext(f"{TNS}EndTime")),
                event.findtext(f"{TNS}BusyType") or "NoData",
            )
            for event in events
        ]


class FetchPiece:
    """One GetUserAvailability request: the busy spans of each of its mailboxes, or each one's error."""

    def __call__(self, connection: Connection, piece: availability.Piece, timeout: float) -> dict[str, FreeBusy]:
        try:
            service = SpansOnly(protocol=protocol(connection), chunk_size=MAX_MAILBOXES, timeout=timeout)
            views = service.call(
                tzinfo=EWS_UTC,
                mailbox_data=[
                    MailboxData(email=m, attendee_type="Required", exclude_conflicts=False) for m in piece.mailboxes
                ],
                timezone=utc_zone(connection, piece.start.year, timeout),
                free_busy_view_options=FreeBusyViewOptions(
                    time_window=TimeWindow(start=_ews(piece.start), end=_ews(piece.end)),
                    merged_free_busy_interval=30,
                    requested_view="FreeBusy",
                ),
            )
            answers: dict[str, FreeBusy] = {}
            for mailbox, view in zip(piece.mailboxes, views, strict=True):
                if isinstance(view, Exception):
                    error = raising(view)
                    if not isinstance(error, GatewayError):
                        raise error
                    answers[mailbox] = FreeBusy(code=error.code, message=error.message)
                    continue
                answers[mailbox] = FreeBusy(spans=view)
            return answers
        except Exception as exc:
            error = raising(exc)
            if error is exc:
                raise
            raise error from exc


fetch_piece = FetchPiece()


class EwsAvailability:
    def __init__(self, connection: Connection, concurrency: int, fetch: FetchPiece = fetch_piece) -> None:
        self.connection = connection
        self.concurrency = concurrency
        self.fetch = fetch

    def __call__(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        work = availability.pieces(mailboxes, start, end, MAX_MAILBOXES, MAX_WINDOW)
        slots = availability.tenant_slots(("ews", self.connection.tenant_id), self.concurrency)
        return availability.lookup(
            lambda piece, timeout: self.fetch(self.connection, piece, timeout),
            work,
            mailboxes,
            deadline,
            slots,
            self.concurrency,
        )
