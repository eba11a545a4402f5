"""The Celery application: Redis broker, late acks, task events for Flower, the periodic sweep."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init

from downsync.observability import LOG_FORMAT, ContextFilter, init_sentry, quiet_libraries
from downsync.settings import Settings, get_settings

CONVERGE_TASK = "downsync.converge"
SWEEP_TASK = "downsync.sweep"


def make_celery(settings: Settings) -> Celery:
    app = Celery("downsync", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="downsync",
        # Flower shows every task from these events.
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={
            # Every retry countdown stays far below this, or Redis would hand the task to a second worker.
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
        },
        beat_schedule={"sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_seconds}},
    )
    return app


app = make_celery(get_settings())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_with_context(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    # Every worker log line names the tenant and correlation id of the task it belongs to.
    for handler in logger.handlers:
        handler.addFilter(ContextFilter())
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    quiet_libraries()


@worker_init.connect
def _sentry(**kwargs: Any) -> None:
    init_sentry(get_settings(), "worker")
