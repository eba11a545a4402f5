"""Per-pair locks in Redis, so one (event, mailbox) pair is converged by one task at a time.

A lock lives a few seconds and is renewed while its holder works, so a worker that dies (SIGKILL,
lost host) frees its pairs within one lifetime instead of blocking them for the longest Exchange call.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from downsync.settings import get_settings


@functools.cache
def client(url: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(url or get_settings().redis_url, socket_connect_timeout=2, socket_timeout=10)


def _renew(lock: redis.lock.Lock, seconds: float, done: threading.Event) -> None:
    while not done.wait(seconds / 3):
        try:
            lock.extend(seconds, replace_ttl=True)
        except LockNotOwnedError:
            return  # expired and taken: the holder's outcome is still safe, as converging is idempotent
        except RedisError:
            continue  # a passing broker hiccup: try again at the next third, while the lock still lives


@contextmanager
def held(name: str, seconds: float, connection: redis.Redis | None = None) -> Iterator[bool]:
    """Try the lock once, without waiting: yields whether it is ours. A busy pair is retried later, not awaited."""
    # Not thread-local: the renewing thread must see the holder's token.
    lock = (connection or client()).lock(f"downsync:lock:{name}", timeout=seconds, blocking=False, thread_local=False)
    acquired = lock.acquire()
    done = threading.Event()
    if acquired:
        threading.Thread(target=_renew, args=(lock, seconds, done), daemon=True, name=f"renew {name}").start()
    try:
        yield bool(acquired)
    finally:
        done.set()
        if acquired:
            try:
                lock.release()
            except LockError:
                pass  # expired meanwhile: the next holder owns it now
