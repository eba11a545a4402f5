"""The sweep: whatever was accepted but has no live task (lost to a broker restart or a killed worker)
is enqueued again. Converging is idempotent, so a task that was only slow is not harmed."""

from __future__ import annotations

import logging
from datetime import timedelta

from downsync.db import session_scope
from downsync.jobs import stale_placements
from downsync.models import utcnow
from downsync.settings import Settings, get_settings
from worker import locks
from worker.enqueue import enqueue_placements

log = logging.getLogger(__name__)


def sweep(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    # One sweep at a time across all workers; the lock lapses by itself before the next round.
    with locks.held("sweep", max(1.0, settings.sweep_interval_seconds)) as ours:
        if not ours:
            return 0
        with session_scope() as session:
            stale = stale_placements(session, utcnow() - timedelta(seconds=settings.sweep_stale_seconds))
            ids = [p.id for p in stale if p.id is not None]
            for placement in stale:
                placement.enqueued_at = utcnow()
                session.add(placement)
        if ids and enqueue_placements(ids):
            log.info("sweep enqueued %d placements without a live task", len(ids))
        return len(ids)
