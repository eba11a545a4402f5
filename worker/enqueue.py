"""Handing placements to the broker, after the transaction that recorded them has committed.

A broker outage is not the caller's failure: the work is stored, and the sweep enqueues it once
the broker is back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from worker.celery_app import CONVERGE_TASK, app

log = logging.getLogger(__name__)


def enqueue_placements(placement_ids: Iterable[int]) -> bool:
    """Send one converge task per placement; False when the broker could not be reached."""
    try:
        for placement_id in placement_ids:
            app.send_task(CONVERGE_TASK, args=[placement_id], retry=False)
    except (OperationalError, KombuError, RedisError, OSError) as exc:
        log.warning("broker unreachable, the sweep will enqueue the stored work later: %s", exc)
        return False
    return True
