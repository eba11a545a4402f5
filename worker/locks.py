"""Per-pair locks in Redis, so one (event, mailbox) pair is converged by one task at a time."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from downsync.settings import get_settings


@functools.cache
def client(url: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(url or get_settings().redis_url, socket_connect_timeout=2, socket_timeout=10)


@contextmanager
def held(name: str, seconds: int, connection: redis.Redis | None = None) -> Iterator[bool]:
    """Try the lock once, without waiting: yields whether it is ours. A busy pair is retried later, not awaited."""
    lock = (connection or client()).lock(f"downsync:lock:{name}", timeout=seconds, blocking=False)
    acquired = lock.acquire()
    try:
        yield bool(acquired)
    finally:
        if acquired:
            try:
                lock.release()
            except LockError:
                pass  # expired meanwhile: the next holder owns it now
