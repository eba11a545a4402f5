"""The broker: Celery on Redis, configured once for the API (which only sends) and the workers.

Enqueueing is the ``WorkQueue`` interface of ``downsync.core.dispatch``; ``CeleryQueue`` implements it.
Correctness never rests on the broker: the store says what is due and the dispatcher re-sends what a
lost message or a dead worker left, so a broker outage only delays work.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from kombu.serialization import dumps
from kombu.utils.uuid import uuid
from redis.exceptions import RedisError

from downsync.settings import Settings, get_settings

log = logging.getLogger(__name__)
# One placement per message: what versions before batches sent, still run by workers for messages in flight.
CONVERGE_TASK = "downsync.converge"
# Up to ``placements_per_message`` placements of one enqueue per message, converged side by side.
CONVERGE_MANY_TASK = "downsync.converge_many"
QUEUE = "downsync"


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # The lease in the store makes a lost message harmless (the dispatcher sends it again), so a task is
        # acknowledged when it is received: nothing waits for Redis's visibility timeout.
        "task_acks_late": False,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        # Workers send the task events Flower shows; senders do not (a process-wide mutex per message).
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "broker_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
        },
    }


def make_celery(settings: Settings, include: list[str] | None = None) -> Celery:
    app = Celery("downsync", broker=settings.redis_url, include=include or [])
    app.conf.update(celery_config(settings))
    return app


class CeleryQueue:
    def __init__(self, app: Celery, per_message: int = 8) -> None:
        self.app = app
        # Receiving, acknowledging and reporting (task events) a message cost a worker more CPU than the
        # store's statements of the placement it carries: a write's mailboxes share messages.
        self.per_message = per_message
        # Messages are built by a kombu channel opened once per process (opening one per write, with a pooled
        # connection and a PING, cost more than pushing), and pushed through a client of the process's own: the
        # channel's pool is capped (10) and a busy API runs more enqueues than that at once.
        self._lock = threading.Lock()
        self._opened: tuple[Any, Any] | None = None
        self._client: redis.Redis | None = None

    def _channel(self) -> Any:
        with self._lock:
            if self._opened is None:
                connection = self.app.connection_for_write()
                try:
                    # One try: a broker that is down fails the call at once instead of after the connect timeout's
                    # retries (2 s of the caller's answer, on every write, for as long as the outage lasts).
                    connection.ensure_connection(max_retries=0)
                    self._opened = (connection, connection.default_channel)
                except BaseException:
                    connection.release()
                    raise
                options = self.app.conf.broker_transport_options
                self._client = redis.Redis.from_url(
                    self.app.conf.broker_url,
                    socket_connect_timeout=options.get("socket_connect_timeout", 2),
                    socket_timeout=options.get("socket_timeout", 10),
                )
            return self._opened[1]

    def enqueue(self, placement_ids: Sequence[int], labels: Mapping[int, str] | None = None) -> bool:
        """``labels`` name each placement for people (Flower shows them as the task's arguments)."""
        if not placement_ids:
            return True
        try:
            channel = self._channel()
            assert self._client is not None
            # Every message in one round trip (a 1000-mailbox write sends 1000): Celery's own task messages,
            # as send_task would build them, pushed onto the queue's Redis list through one pipeline.
            with self._client.pipeline(transaction=False) as pipe:
                for start in range(0, len(placement_ids), self.per_message):
                    batch = list(placement_ids[start : start + self.per_message])
                    pipe.lpush(QUEUE, self._message(channel, batch, [(labels or {}).get(p) for p in batch]))
                pipe.execute()
        except (OperationalError, KombuError, RedisError, OSError) as exc:
            log.warning("broker unreachable; the stored work is dispatched when it is back: %s", exc)
            return False
        return True

    def _message(self, channel: Any, placement_ids: list[int], labels: list[str | None]) -> str:
        shown = [f"({p}, {label!r})" if label else f"({p},)" for p, label in zip(placement_ids, labels, strict=True)]
        headers, properties, body, _ = self.app.amqp.as_task_v2(
            uuid(),
            CONVERGE_MANY_TASK,
            [placement_ids],
            {},
            argsrepr=f"([{', '.join(shown)}],)",
            kwargsrepr="{}",
        )
        content_type, encoding, payload = dumps(body, serializer="json")
        message = channel.prepare_message(
            payload,
            priority=0,
            content_type=content_type,
            content_encoding=encoding,
            headers=headers,
            properties={"delivery_mode": 2, **properties},
        )
        channel._inplace_augment_message(message, QUEUE, QUEUE)
        return json.dumps(message)


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """A short-timeout client of the broker's Redis, for what else lives there (rate limits, seen signatures)."""
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


FINAL_CHANNEL = "downsync:jobs:final"


def announce_final(redis_url: str, job_ids: Sequence[str]) -> None:
    """Tell whoever waits for these jobs (API calls with ``?wait=``) that they are final; a lost message only means
    the waiter looks at its next poll."""
    if not job_ids:
        return
    try:
        client = redis_client(redis_url)
        for job_id in job_ids:
            client.publish(f"{FINAL_CHANNEL}:{job_id}", "final")
    except (RedisError, OSError) as exc:
        log.debug("final jobs not announced: %s", exc)


@functools.cache
def default_queue() -> CeleryQueue:
    settings = get_settings()
    return CeleryQueue(make_celery(settings), settings.placements_per_message)
