"""``downsync scheduler``: the dispatcher alone, no tasks, once per deployment.

Workers started with ``--no-dispatch`` leave it to this process, so a deployment of many workers queries the store
for due work once a second instead of once per worker, and workers stay small. Running two by mistake is safe:
each tick takes its placements ``FOR UPDATE SKIP LOCKED``, so no placement is sent twice; it only costs queries.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from downsync.observability import init_sentry
from downsync.queue import make_celery
from downsync.settings import get_settings
from worker import runtime

log = logging.getLogger(__name__)


def run(stop: threading.Event | None = None) -> int:
    """Dispatch until SIGTERM or SIGINT (or ``stop``, for tests); returns the process's exit code."""
    settings = get_settings()
    init_sentry(settings, "scheduler")
    stop = stop or threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)
    # An app without tasks: the scheduler only sends them by name, as the API does.
    thread = runtime.start_dispatcher(make_celery(settings))
    runtime.serve_metrics()
    log.info("scheduler: dispatching due work every %s s", settings.dispatch_interval_seconds)
    while not stop.wait(1.0):
        if not thread.is_alive():  # the loop catches every error, so this is a bug: let the orchestrator restart us
            log.error("scheduler: the dispatcher thread ended; exiting")
            return 1
    runtime.stop()
    # At most one tick is in flight; its transaction commits or rolls back before the thread ends.
    thread.join(timeout=settings.dispatch_interval_seconds + 30)
    return 0
