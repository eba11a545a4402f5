"""Keeping this process's claims alive: one heartbeat renews every lease it holds, in one statement.

A worker may write to Exchange for a claim only while ``check`` passes: the lease's local deadline,
computed from the moment the claim or its last renewal was *sent*, minus a margin for clock skew between
workers, so a claim this worker believes it holds has never expired in the store. A worker that stalls
(SIGSTOP, a long pause) or loses the store stops renewing, its deadlines pass, and it writes nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from downsync.core.claims import renew
from downsync.db import session_scope

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This worker may no longer write for the claim: its lease ran out or another worker took the placement."""


class LeaseKeeper:
    def __init__(
        self,
        engine: Engine,
        lease_seconds: float,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        heartbeat: bool = True,
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.margin = min(2.0, lease_seconds / 5)
        self.now = now
        self.monotonic = monotonic
        self._deadlines: dict[str, float] = {}
        self._lock = threading.Lock()
        self._heartbeat = heartbeat
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def hold(self, token: str, sent_at: float) -> None:
        """Start keeping a claim whose UPDATE was sent at ``sent_at`` (this keeper's monotonic clock)."""
        with self._lock:
            self._deadlines[token] = sent_at + self.lease_seconds - self.margin
        self._start()

    def release(self, token: str) -> None:
        with self._lock:
            self._deadlines.pop(token, None)

    def check(self, token: str) -> None:
        """Raise ``LeaseLost`` unless the claim may still write; called right before every write to Exchange."""
        with self._lock:
            deadline = self._deadlines.get(token)
        if deadline is None or self.monotonic() >= deadline:
            raise LeaseLost(token)

    def beat(self) -> None:
        """Renew every lease still held; one that the store no longer has for us is lost at once."""
        with self._lock:
            tokens = [t for t, d in self._deadlines.items() if d > self.monotonic()]
        if not tokens:
            return
        sent_at = self.monotonic()
        try:
            with session_scope(self.engine) as session:
                renewed = renew(session, tokens, self.now(), self.lease_seconds)
        except SQLAlchemyError as exc:
            log.warning("could not renew %d leases (the store did not answer): %s", len(tokens), exc)
            return
        with self._lock:
            for token in tokens:
                if token not in self._deadlines:
                    continue
                if token in renewed:
                    self._deadlines[token] = sent_at + self.lease_seconds - self.margin
                else:
                    self._deadlines[token] = float("-inf")

    def _start(self) -> None:
        if self._thread is not None or not self._heartbeat:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
