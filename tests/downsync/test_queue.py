"""The broker as the API and the dispatcher use it: a broker that is down fails an enqueue at once."""

from __future__ import annotations

import time

from downsync.embedded import free_port
from downsync.queue import CeleryQueue, make_celery
from downsync.settings import Settings


def test_a_broker_that_is_down_is_reported_at_once_not_after_the_connect_retries() -> None:
    # Every write answers after its enqueue: while Redis is down, each one used to wait out 2 s of connect retries.
    queue = CeleryQueue(make_celery(Settings(environment="test", redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    for _ in range(3):
        started = time.monotonic()
        assert queue.enqueue([1, 2]) is False
        assert time.monotonic() - started < 0.5
