"""Honouring a server's back-off per mailbox, across every placement this worker process converges.

Exchange throttles a mailbox, not a placement: after ErrorServerBusy with ``BackOffMilliseconds`` (or Graph's
429 with ``Retry-After``), no request may reach that mailbox before the back-off is over, whichever event it is
for. A placement's own retry already waits that long; this gate makes the others wait too. Calls to one mailbox
go one at a time, so a call never sets off while another one's busy answer is on its way back unread. A call
that finds the mailbox backing off, or still busy with another call after ``wait_seconds``, is not made: it
raises a throttling ``TransientError`` (never final) with the time left, and the placement is due again then.

The gate is one per worker process; a ``BackOffBoard`` shared by every worker (Redis, in production) makes it hold
across processes: one call at a time per mailbox among all workers, and a back-off told to one worker holds in
every other, which would otherwise learn of it only from busy answers of their own.

A gateway may also name an account limit (``AccountLimit``): EWS lets a service account make only so many requests
at once (``EWSMaxConcurrency``, 27 by default) and answers ErrorServerBusy beyond. A turn then also takes one of the
account's slots on the board, so all workers together stay within it, and a call waits for a free slot as for a busy
mailbox.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from downsync.core.errors import TransientError
from downsync.core.gateway import CalendarGateway
from downsync.core.model import Appointment, Found, FreeBusy, ItemRef, Meeting, MeetingView, Tag

T = TypeVar("T")
BUSY = "ErrorServerBusy"
FULL = -1.0  # a board's answer: every request the account may make at once is under way


class Deferred(TransientError):
    """The call was not made: the mailbox is backing off, or busy with another call of this worker. Due again when
    ``back_off`` is over (no exponential back-off: nothing was asked of the server)."""

    def __init__(self, message: str, back_off: float) -> None:
        super().__init__(BUSY, message, back_off=back_off, throttled=True)


@dataclass(frozen=True)
class AccountLimit:
    """Requests the server takes at once from one account, whichever mailbox they are for."""

    key: str
    limit: int


class BackOffBoard(Protocol):
    """What every worker process shares about a mailbox: whose call to it is under way, and until when the server
    asked to wait, in wall-clock seconds since the epoch (worker clocks agree, as leases need). Best effort: a board
    that cannot be reached grants every turn and forgets, and each process still honours what it was told."""

    def enter(
        self, key: str, token: str, now: float, hold_seconds: float, account: AccountLimit | None = None
    ) -> float | None:
        """Take the mailbox's turn for one call (held ``hold_seconds`` at most, so a killed holder cannot keep it),
        and one of ``account``'s slots with it: None when taken; else the seconds of back-off left, 0 while another
        process's call to the mailbox is under way, or ``FULL`` while every slot of the account is taken."""
        ...

    def leave(self, key: str, token: str, account: AccountLimit | None = None) -> None:
        """Give the turn (only if still ``token``'s) and the account's slot back."""
        ...

    def hold(self, key: str, until: float) -> None:
        """No call to the mailbox before ``until`` (a later back-off already held stays)."""
        ...


class MailboxGate:
    def __init__(
        self,
        wait_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        board: BackOffBoard | None = None,
        wall: Callable[[], float] = time.time,
        hold_seconds: float = 60.0,
        poll_seconds: float = 0.02,
        margin_seconds: float = 0.05,
    ) -> None:
        self.wait_seconds = wait_seconds
        self.monotonic = monotonic
        self.board = board
        self.wall = wall
        self.hold_seconds = hold_seconds  # longer than any one call: the Exchange timeout and then some
        self.poll_seconds = poll_seconds
        # Exchange counts its back-off from when it finished answering, which it may log a little after the answer
        # reached us (measured: up to 31 ms under load); waiting this much longer keeps us late by its clock too.
        self.margin_seconds = margin_seconds
        self._locks: dict[Hashable, threading.Lock] = {}
        self._not_before: dict[Hashable, float] = {}
        self._guard = threading.Lock()
        self._local = threading.local()  # the mailboxes whose turn this thread holds

    def _lock(self, key: Hashable) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:  # forget idle mailboxes whose back-off is over
                now = self.monotonic()
                for stale in [k for k, v in self._locks.items() if not v.locked()]:
                    if self._not_before.get(stale, 0.0) <= now:
                        self._locks.pop(stale)
                        self._not_before.pop(stale, None)
            return self._locks.setdefault(key, threading.Lock())

    def backing_off(self, key: Hashable) -> float:
        """Seconds before the mailbox may be called again (0: now), as this process knows it."""
        with self._guard:
            return max(0.0, self._not_before.get(key, 0.0) - self.monotonic())

    @contextmanager
    def turn(self, key: Hashable, account: AccountLimit | None = None) -> Iterator[None]:
        """Hold the mailbox's turn across several calls of this thread (a placement's look and its write): one round
        trip to the board each way instead of one per call. Calls made within it go straight through."""
        held = self._held()
        if key in held:
            yield
            return
        started = self.monotonic()
        lock = self._lock(key)
        if not lock.acquire(timeout=self.wait_seconds):
            raise Deferred("another request to this mailbox is still under way", 1.0)
        token = None
        try:
            left = self.backing_off(key)
            if left > 0:
                raise Deferred(f"the server asked to wait; {left:.1f} s left for this mailbox", left)
            if self.board is not None:
                token = self._enter(str(key), started, account)
            held.add(key)
            yield
        finally:
            held.discard(key)
            if token is not None and self.board is not None:
                self.board.leave(str(key), token, account)
            lock.release()

    def call(self, key: Hashable, action: Callable[[], T], account: AccountLimit | None = None) -> T:
        with self.turn(key, account):
            # Within a turn held across calls: a back-off an earlier call of the turn was told still holds.
            left = self.backing_off(key)
            if left > 0:
                raise Deferred(f"the server asked to wait; {left:.1f} s left for this mailbox", left)
            try:
                return action()
            except TransientError as error:
                if error.throttled and error.back_off:
                    wait = error.back_off + self.margin_seconds
                    with self._guard:
                        self._not_before[key] = max(self._not_before.get(key, 0.0), self.monotonic() + wait)
                    if self.board is not None:
                        self.board.hold(str(key), self.wall() + wait)
                raise

    def _held(self) -> set[Hashable]:
        held: set[Hashable] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = set()
        return held

    def _enter(self, key: str, started: float, account: AccountLimit | None) -> str:
        """The mailbox's turn across processes (and a slot of its account), waiting for another process's call within
        ``wait_seconds``."""
        assert self.board is not None
        token = uuid.uuid4().hex
        while True:
            left = self.board.enter(key, token, self.wall(), self.hold_seconds, account)
            if left is None:
                return token
            if left > 0:
                raise Deferred(f"the server asked to wait; {left:.1f} s left for this mailbox", left)
            if self.monotonic() - started >= self.wait_seconds:
                if left == FULL:
                    assert account is not None
                    raise Deferred(f"the account's {account.limit} requests at once are all under way", 1.0)
                raise Deferred("another worker's request to this mailbox is still under way", 1.0)
            time.sleep(self.poll_seconds)


class GatedGateway:
    """A tenant's gateway whose calls to one mailbox go through the gate (``free_busy``, a call for many, is not)."""

    def __init__(self, gateway: CalendarGateway, gate: MailboxGate) -> None:
        self.gateway = gateway
        self.gate = gate
        self.backend = gateway.backend
        # The requests the gateway's account may have under way at once, if the server limits them.
        self.account: AccountLimit | None = getattr(gateway, "account", None)

    def turn(self, mailbox: str) -> AbstractContextManager[None]:
        """The mailbox's turn, held across the calls made within it (see ``MailboxGate.turn``)."""
        return self.gate.turn(mailbox.lower(), self.account)

    def _call(self, mailbox: str, action: Callable[[], T]) -> T:
        # Keyed by the address alone: tenants sharing an Exchange organisation share its throttling too.
        return self.gate.call(mailbox.lower(), action, self.account)

    def find(self, mailbox: str, tag: Tag) -> list[Found]:
        return self._call(mailbox, lambda: self.gateway.find(mailbox, tag))

    def create_appointment(self, mailbox: str, tag: Tag, state: Appointment, key: str) -> ItemRef:
        return self._call(mailbox, lambda: self.gateway.create_appointment(mailbox, tag, state, key))

    def update_appointment(self, mailbox: str, ref: ItemRef, tag: Tag, state: Appointment) -> ItemRef:
        return self._call(mailbox, lambda: self.gateway.update_appointment(mailbox, ref, tag, state))

    def remove(self, mailbox: str, refs: Sequence[ItemRef]) -> None:
        self._call(mailbox, lambda: self.gateway.remove(mailbox, refs))

    def create_meeting_draft(self, organizer: str, tag: Tag, state: Meeting, key: str) -> ItemRef:
        return self._call(organizer, lambda: self.gateway.create_meeting_draft(organizer, tag, state, key))

    def send_meeting(self, organizer: str, ref: ItemRef, tag: Tag, state: Meeting) -> tuple[ItemRef, str | None]:
        return self._call(organizer, lambda: self.gateway.send_meeting(organizer, ref, tag, state))

    def cancel_meeting(self, organizer: str, refs: Sequence[ItemRef]) -> None:
        self._call(organizer, lambda: self.gateway.cancel_meeting(organizer, refs))

    def read_meeting(self, organizer: str, tag: Tag) -> MeetingView | None:
        return self._call(organizer, lambda: self.gateway.read_meeting(organizer, tag))

    def resolve(self, address: str) -> str | None:
        # Gated as a call to the mailbox: on Graph it reads the mailbox's calendar, which Exchange counts (and
        # throttles) as one; on EWS it is a directory lookup, which a mailbox's back-off only holds a little longer.
        return self._call(address, lambda: self.gateway.resolve(address))

    def free_busy(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        return self.gateway.free_busy(mailboxes, start, end, deadline)
