"""The Celery application of the workers: the shared broker configuration, logging, Sentry, and the dispatcher
that a worker process runs beside its tasks unless ``downsync scheduler`` runs it instead."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_ready, worker_shutdown

from downsync.observability import LOG_FORMAT, ContextFilter, init_sentry, quiet_libraries
from downsync.queue import make_celery
from downsync.settings import get_settings
from worker import runtime

app = make_celery(get_settings(), include=["worker.tasks"])


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_with_context(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    # Every worker log line names the tenant and correlation id of the task it belongs to.
    for handler in logger.handlers:
        handler.addFilter(ContextFilter())
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    quiet_libraries()


@worker_init.connect
def _sentry(sender: Any = None, **kwargs: Any) -> None:
    init_sentry(get_settings(), "worker")
    # A message's placements run side by side on as many threads as the worker was given; under a pool of
    # processes (or an "auto" concurrency) each child runs its messages' placements one after the other.
    pool = getattr(sender, "pool_cls", None)
    pool_name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")  # celery.concurrency.thread
    concurrency = getattr(sender, "concurrency", None)
    if "thread" in pool_name.lower() and isinstance(concurrency, int):
        runtime.side_by_side = max(1, concurrency)


# ``downsync worker --no-dispatch`` turns this off where one ``downsync scheduler`` dispatches for the deployment;
# on by default so that a single worker (a small install, the demo) needs nothing else.
dispatch_enabled = True


@worker_ready.connect
def _dispatch(**kwargs: Any) -> None:
    logging.getLogger(__name__).info("converging up to %d placements of a message side by side", runtime.side_by_side)
    if dispatch_enabled:
        runtime.start_dispatcher(app)
    runtime.serve_metrics()


@worker_shutdown.connect
def _stop(**kwargs: Any) -> None:
    runtime.stop()
