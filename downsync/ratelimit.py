"""Per-tenant rate limits, counted in Redis so every API process shares them (the ``limits`` library's moving
window). Writes and availability are counted apart; a tenant's own limits override the settings' defaults."""

from __future__ import annotations

import functools
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


class RateLimiter:
    def __init__(self, redis_url: str) -> None:
        self.limiter = MovingWindowRateLimiter(
            RedisStorage(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5, key_prefix="downsync-limits")
        )

    def hit(self, family: str, tenant_id: int, limits: str) -> float | None:
        """Count one request; None when allowed, else how many seconds until one more would be.

        When Redis does not answer the request is let through: a broker outage must not stop Salesforce's writes,
        which are stored and processed once the broker is back."""
        try:
            for item in _items(limits):
                if not self.limiter.hit(item, family, str(tenant_id)):
                    reset = self.limiter.get_window_stats(item, family, str(tenant_id)).reset_time
                    return max(1.0, math.ceil(reset - time.time()))
        except (RedisError, OSError, ConfigurationError) as exc:
            log.warning("rate limit not counted, Redis does not answer: %s", exc)
        return None


@functools.cache
def limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(redis_url)
