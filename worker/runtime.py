"""What a worker process builds once: the converger with its lease heartbeat, and the dispatcher thread (which
``downsync scheduler`` runs too)."""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from celery import Celery
from prometheus_client import start_http_server

from downsync.backoff import RedisBackOffBoard
from downsync.core.converge import Converger
from downsync.core.dispatch import Dispatcher
from downsync.core.leases import LeaseKeeper
from downsync.core.throttle import MailboxGate
from downsync.db import get_engine
from downsync.models import utcnow
from downsync.queue import CeleryQueue, announce_final
from downsync.settings import get_settings
from downsync.tenants import TenantDirectory
from downsync.webhooks import delivery as webhook_delivery

log = logging.getLogger(__name__)
_stop = threading.Event()
# How many placements this process converges at once: the worker's --concurrency under the thread pool (set when
# the worker starts); one under a pool of processes, whose children each take messages of their own.
side_by_side = 1


@functools.cache
def leases() -> LeaseKeeper:
    settings = get_settings()
    return LeaseKeeper(get_engine(), settings.lease_seconds, now=utcnow)


@functools.cache
def converger() -> Converger:
    settings = get_settings()
    return Converger(
        get_engine(),
        TenantDirectory(get_engine(), settings, calls_at_once=side_by_side),
        settings,
        leases(),
        # One call at a time per mailbox across every worker, and a back-off told to one holds in all. A turn lapses
        # with the lease of the worker holding it: a killed or stalled worker holds up the mailbox no longer than
        # its own work, and the lease, not the turn, is what keeps a second create away.
        gate=MailboxGate(board=RedisBackOffBoard(settings.redis_url), hold_seconds=settings.lease_seconds),
        announce=functools.partial(announce_final, settings.redis_url),
    )


@functools.cache
def placements_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=side_by_side, thread_name_prefix="placement")


def converge_many(placement_ids: list[int]) -> str:
    """Converge the placements of one message side by side, on threads shared by every message of the process (so
    at most ``side_by_side`` Exchange calls at once however many messages are held); a summary for Flower."""
    if side_by_side == 1:
        steps = [converger().run(placement_id) for placement_id in placement_ids]
    else:
        steps = list(placements_pool().map(converger().run, placement_ids))
    return ", ".join(f"{n} {status}" for status, n in sorted(Counter(step.status for step in steps).items()))


def start_dispatcher(app: Celery) -> threading.Thread:
    """Start the dispatcher thread. ``downsync worker`` (unless --no-dispatch) and ``downsync scheduler`` both call
    this one function, so whatever else must run periodically for the deployment is started here, in one place."""
    settings = get_settings()
    dispatcher = Dispatcher(
        get_engine(),
        CeleryQueue(app, settings.placements_per_message),
        settings.redeliver_seconds,
        announce=functools.partial(announce_final, settings.redis_url),
    )
    thread = threading.Thread(
        target=dispatcher.run, args=(settings.dispatch_interval_seconds, _stop), name="dispatcher", daemon=True
    )
    thread.start()
    # Webhook deliveries are found and handed out the same way, once per dispatching process.
    webhook_delivery.start_loop(app, _stop)
    return thread


def serve_metrics() -> None:
    """This worker's metrics for Prometheus; a port taken (two workers on one host) is said, not fatal."""
    port = get_settings().worker_metrics_port
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        log.warning("worker metrics not served on port %s: %s", port, exc)


def stop() -> None:
    _stop.set()
    if converger.cache_info().currsize:
        leases().stop()
