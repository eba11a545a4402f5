"""Handing due work to the broker: the store says what is due, the broker only carries the news.

Every worker process runs a dispatcher: each tick it takes the due placements that no live lease holds
and no recent message covers (``FOR UPDATE SKIP LOCKED``, so two dispatchers never send the same one),
marks them sent and enqueues them. That covers work whose message was lost (a broker restart, a killed
worker's prefetched tasks), retries after their back-off, and claims whose holder vanished (as soon as
the lease expires). It also closes jobs whose closer was interrupted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, or_, select

from downsync import metrics
from downsync.db import session_scope
from downsync.jobs import close_jobs, placement_labels, unclosed_jobs
from downsync.models import Placement, utcnow

log = logging.getLogger(__name__)


class WorkQueue(Protocol):
    """The broker, as the API and the dispatcher see it."""

    def enqueue(self, placement_ids: Sequence[int], labels: Mapping[int, str] | None = None) -> bool:
        """Hand the placements to the workers; False when the broker could not be reached. ``labels`` name the
        placements for people (tenant, kind, event, mailbox), as Flower shows them."""
        ...


def take_due(session: Session, now: datetime, redeliver_seconds: float, limit: int) -> list[int]:
    query = (
        select(Placement.id, Placement.lease_token, Placement.enqueued_at)
        .where(
            col(Placement.due_at) <= now,
            or_(col(Placement.lease_expires_at).is_(None), col(Placement.lease_expires_at) < now),
            or_(
                col(Placement.enqueued_at).is_(None),
                col(Placement.enqueued_at) < now - timedelta(seconds=redeliver_seconds),
            ),
        )
        .order_by(col(Placement.due_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.exec(query).all()
    ids = [row[0] for row in rows if row[0] is not None]
    for _, lease, enqueued in rows:
        if lease is not None:
            metrics.REDISPATCHED.labels("lease_expired").inc()
        elif enqueued is not None:
            metrics.REDISPATCHED.labels("message_lost").inc()
    if ids:
        session.exec(update(Placement).where(col(Placement.id).in_(ids)).values(enqueued_at=now))
    return ids


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        queue: WorkQueue,
        redeliver_seconds: float,
        now: Callable[[], datetime] = utcnow,
        batch: int = 500,
        announce: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.announce = announce
        self.engine = engine
        self.queue = queue
        self.redeliver_seconds = redeliver_seconds
        self.now = now
        self.batch = batch
        self._ticks = 0

    def tick(self) -> int:
        """One round: returns how many placements were handed to the broker."""
        self._ticks += 1
        with session_scope(self.engine) as session:
            ids = take_due(session, self.now(), self.redeliver_seconds, self.batch)
            labels = placement_labels(session, ids) if ids else {}
        if ids and not self.queue.enqueue(ids, labels):
            # Not sent after all: due again at the next tick, once the broker answers.
            with session_scope(self.engine) as session:
                session.exec(update(Placement).where(col(Placement.id).in_(ids)).values(enqueued_at=None))
            return 0
        if self._ticks % 10 == 1:
            with session_scope(self.engine) as session:
                closed = close_jobs(session, unclosed_jobs(session))
            if closed and self.announce is not None:
                self.announce(closed)
        return len(ids)

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                while self.tick() >= self.batch and not stop.is_set():
                    pass
            except SQLAlchemyError as exc:
                log.warning("dispatcher: the store did not answer: %s", exc)
            except Exception:  # the loop must outlive a bad tick; the error is reported
                log.exception("dispatcher tick failed")
