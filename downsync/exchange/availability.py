"""Free/busy from Exchange for many mailboxes at once, always answered by a deadline.

One GetUserAvailability request covers at most 100 mailboxes and 42 days, so a lookup is cut
into such pieces, which run concurrently (bounded per tenant, below Exchange's concurrency limit)
as the tenant's service account, with no impersonation. Throttling is retried within the deadline,
honouring the server's back-off; whatever has not answered by then is reported as ``ErrorTimeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.properties import FreeBusyViewOptions, MailboxData, TimeWindow, TimeZone
from exchangelib.protocol import Protocol
from exchangelib.services import GetServerTimeZones, GetUserAvailability

from downsync.exchange.connection import Connection, configuration
from downsync.exchange.errors import ExchangeError, TransientExchangeError, classify
from downsync.exchange.items import plain_time

MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
EWS_UTC = EWSTimeZone("UTC")


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    busy_type: str


@dataclass
class MailboxAnswer:
    code: str = "NoError"
    message: str | None = None
    spans: list[Busy] = field(default_factory=list)


@dataclass(frozen=True)
class Piece:
    mailboxes: tuple[str, ...]
    start: datetime
    end: datetime


def pieces(mailboxes: list[str], start: datetime, end: datetime) -> list[Piece]:
    """Every request the lookup needs: at most 100 mailboxes by at most 42 days each."""
    windows = []
    cursor = start
    while cursor < end:
        windows.append((cursor, min(end, cursor + MAX_WINDOW)))
        cursor = windows[-1][1]
    groups = [tuple(mailboxes[i : i + MAX_MAILBOXES]) for i in range(0, len(mailboxes), MAX_MAILBOXES)]
    return [Piece(group, a, b) for group in groups for a, b in windows]


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


_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def tenant_slots(connection: Connection, concurrency: int) -> threading.BoundedSemaphore:
    """The tenant's share of Exchange's concurrency limit, shared by all its availability calls at once."""
    with _slots_lock:
        return _slots.setdefault(connection.tenant_id, threading.BoundedSemaphore(concurrency))


def _ews(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


class FetchPiece:
    """One GetUserAvailability request: the busy spans of each of its mailboxes, or each one's error."""

    def __call__(self, connection: Connection, piece: Piece, timeout: float) -> dict[str, MailboxAnswer]:
        service = GetUserAvailability(protocol=protocol(connection), chunk_size=MAX_MAILBOXES, timeout=timeout)
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
        answers: dict[str, MailboxAnswer] = {}
        for mailbox, view in zip(piece.mailboxes, views, strict=True):
            if isinstance(view, Exception):
                error = classify(view)
                answers[mailbox] = MailboxAnswer(code=error.code, message=error.message)
                continue
            answers[mailbox] = MailboxAnswer(
                spans=[Busy(plain_time(e.start), plain_time(e.end), e.busy_type) for e in view.calendar_events or []]
            )
        return answers


fetch_piece = FetchPiece()


def _attempt(
    fetch: Callable[[Connection, Piece, float], dict[str, MailboxAnswer]],
    connection: Connection,
    piece: Piece,
    deadline: float,
    slots: threading.BoundedSemaphore,
) -> dict[str, MailboxAnswer]:
    """Fetch one piece, retrying throttling while the server's back-off still fits before the deadline."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05 or not slots.acquire(timeout=remaining):
            raise TransientExchangeError("ErrorTimeout", "no answer from Exchange before the deadline")
        try:
            return fetch(connection, piece, deadline - time.monotonic())
        except Exception as exc:
            error = classify(exc)
            pause = getattr(error, "back_off", None) or 0.2
            retryable = isinstance(error, TransientExchangeError) and error.code != "ErrorTimeout"
            if not retryable or time.monotonic() + pause >= deadline - 0.05:
                raise error from exc
        finally:
            slots.release()
        time.sleep(pause)


class Lookup:
    """Free/busy for a list of mailboxes over a window, answered within ``deadline_seconds``."""

    def __init__(
        self,
        connection: Connection,
        concurrency: int,
        fetch: Callable[[Connection, Piece, float], dict[str, MailboxAnswer]] = fetch_piece,
    ) -> None:
        self.connection = connection
        self.concurrency = concurrency
        self.fetch = fetch

    def __call__(
        self, mailboxes: list[str], start: datetime, end: datetime, deadline_seconds: float
    ) -> dict[str, MailboxAnswer]:
        deadline = time.monotonic() + deadline_seconds
        answers = {m: MailboxAnswer() for m in mailboxes}
        failed: dict[str, MailboxAnswer] = {}
        work = pieces(mailboxes, start, end)
        slots = tenant_slots(self.connection, self.concurrency)
        executor = ThreadPoolExecutor(max_workers=min(self.concurrency, len(work)) or 1, thread_name_prefix="freebusy")
        try:
            running: dict[Future[dict[str, MailboxAnswer]], Piece] = {
                executor.submit(_attempt, self.fetch, self.connection, piece, deadline, slots): piece for piece in work
            }
            pending = set(running)
            while pending:
                done, pending = wait(
                    pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
                )
                if not done:
                    break
                for future in done:
                    piece = running[future]
                    try:
                        for mailbox, answer in future.result().items():
                            if answer.code != "NoError":
                                failed[mailbox] = answer
                            else:
                                answers[mailbox].spans.extend(answer.spans)
                    except ExchangeError as error:
                        for mailbox in piece.mailboxes:
                            failed.setdefault(mailbox, MailboxAnswer(code=error.code, message=error.message))
            for future in pending:
                future.cancel()
                for mailbox in running[future].mailboxes:
                    failed.setdefault(
                        mailbox, MailboxAnswer("ErrorTimeout", "no answer from Exchange before the deadline")
                    )
        finally:
            # Late pieces finish in the background; nobody waits for them.
            executor.shutdown(wait=False, cancel_futures=True)
        answers.update(failed)
        return answers
