"""Free/busy for many mailboxes, always answered by a deadline: the part every backend shares.

A backend's request covers a bounded number of mailboxes and days (EWS: 100 and 42; Graph: 20 and 62),
so a lookup is cut into pieces that run concurrently, bounded per tenant below the server's concurrency
limit. Throttling is retried within the deadline after the server's back-off; whatever has not answered
by then is ``ErrorTimeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from downsync.core.errors import TIMEOUT, GatewayError, TransientError
from downsync.core.model import FreeBusy


@dataclass(frozen=True)
class Piece:
    mailboxes: tuple[str, ...]
    start: datetime
    end: datetime


Fetch = Callable[[Piece, float], dict[str, FreeBusy]]


def pieces(
    mailboxes: Sequence[str], start: datetime, end: datetime, per_request: int, window: timedelta
) -> list[Piece]:
    """Every request the lookup needs: at most ``per_request`` mailboxes by at most ``window`` each."""
    windows = []
    cursor = start
    while cursor < end:
        windows.append((cursor, min(end, cursor + window)))
        cursor = windows[-1][1]
    groups = [tuple(mailboxes[i : i + per_request]) for i in range(0, len(mailboxes), per_request)]
    return [Piece(group, a, b) for group in groups for a, b in windows]


_slots: dict[object, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def tenant_slots(key: object, concurrency: int) -> threading.BoundedSemaphore:
    """A tenant's share of the server's concurrency limit, shared by all its availability calls at once."""
    with _slots_lock:
        return _slots.setdefault(key, threading.BoundedSemaphore(concurrency))


def _attempt(fetch: Fetch, piece: Piece, deadline: float, slots: threading.BoundedSemaphore) -> dict[str, FreeBusy]:
    """Fetch one piece, retrying throttling while the server's back-off still fits before the deadline."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05 or not slots.acquire(timeout=remaining):
            raise TransientError(TIMEOUT, "no answer from Exchange before the deadline")
        try:
            return fetch(piece, deadline - time.monotonic())
        except TransientError as error:
            pause = error.back_off or 0.2
            if error.code == TIMEOUT or time.monotonic() + pause >= deadline - 0.05:
                raise
        finally:
            slots.release()
        time.sleep(pause)


def lookup(
    fetch: Fetch,
    work: list[Piece],
    mailboxes: Sequence[str],
    deadline: float,
    slots: threading.BoundedSemaphore,
    concurrency: int,
) -> dict[str, FreeBusy]:
    """Run every piece concurrently; each mailbox gets its spans, or the code of its failure, by the deadline."""
    answers = {m: FreeBusy() for m in mailboxes}
    failed: dict[str, FreeBusy] = {}
    executor = ThreadPoolExecutor(max_workers=min(concurrency, len(work)) or 1, thread_name_prefix="freebusy")
    try:
        running: dict[Future[dict[str, FreeBusy]], Piece] = {
            executor.submit(_attempt, fetch, piece, deadline, slots): piece for piece in work
        }
        pending = set(running)
        while pending:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                piece = running[future]
                try:
                    for mailbox, answer in future.result().items():
                        if answer.code != "NoError":
                            failed[mailbox] = answer
                        elif mailbox in answers:
                            answers[mailbox].spans.extend(answer.spans)
                except GatewayError as error:
                    for mailbox in piece.mailboxes:
                        failed.setdefault(mailbox, FreeBusy(code=error.code, message=error.message))
        for future in pending:
            future.cancel()
            for mailbox in running[future].mailboxes:
                failed.setdefault(mailbox, FreeBusy(TIMEOUT, "no answer from Exchange before the deadline"))
    finally:
        # Late pieces finish in the background; nobody waits for them.
        executor.shutdown(wait=False, cancel_futures=True)
    answers.update(failed)
    return answers
