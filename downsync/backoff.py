"""Each mailbox's turn and Exchange's back-offs, shared by every worker through the broker's Redis (the core's
``BackOffBoard``).

Two keys per mailbox: whose call is under way (expiring with the holder's lease, so a killed or stalled worker
cannot keep the turn) and when it may be called again (expiring then, so mailboxes throttled once do not pile up).
Taking a turn is one round trip and giving it back another. Redis being unreachable never stops a call: each worker
still honours what it was told itself.

An account with a limit has a sorted set of the turns holding one of its slots, each scored with when it lapses (as
the turn does): a turn is taken only while fewer than the limit are live, in the same script.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from downsync.core.throttle import FULL, AccountLimit
from downsync.queue import redis_client

log = logging.getLogger(__name__)
PREFIX = "downsync:backoff:"
TURN = "downsync:turn:"
SLOTS = "downsync:slots:"
# Refuse the turn while a back-off runs (answering its end), another call holds it (answering 0) or, with an account
# (KEYS[3], limit ARGV[4]), while all its slots are taken (answering -1).
_ENTER = """
local ends = redis.call('GET', KEYS[1])
if ends and tonumber(ends) > tonumber(ARGV[1]) then return ends end
if KEYS[3] then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return '-1' end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  if KEYS[3] then
    redis.call('ZADD', KEYS[3], tonumber(ARGV[1]) + tonumber(ARGV[3]) / 1000, ARGV[2])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
  return false
end
return '0'
"""
_LEAVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
"""
# Keep the later of two back-offs: two workers throttled at once must not shorten each other's.
_HOLD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""


class RedisBackOffBoard:
    def __init__(self, redis_url: str, complain_every: float = 60.0) -> None:
        self.client = redis_client(redis_url)
        self._enter = self.client.register_script(_ENTER)
        self._leave = self.client.register_script(_LEAVE)
        self._hold = self.client.register_script(_HOLD)
        self.complain_every = complain_every
        self._complained = 0.0

    def enter(
        self, key: str, token: str, now: float, hold_seconds: float, account: AccountLimit | None = None
    ) -> float | None:
        keys, args = [PREFIX + key, TURN + key], [repr(now), token, int(hold_seconds * 1000)]
        if account is not None:
            keys.append(SLOTS + account.key)
            args.append(account.limit)
        try:
            answer = self._enter(keys=keys, args=args)
        except RedisError as exc:
            self._complain(exc)
            return None
        if answer is None:
            return None
        if float(answer) == FULL:
            return FULL
        return max(0.0, float(answer) - now) if float(answer) else 0.0

    def leave(self, key: str, token: str, account: AccountLimit | None = None) -> None:
        keys = [TURN + key] if account is None else [TURN + key, SLOTS + account.key]
        try:
            self._leave(keys=keys, args=[token])
        except RedisError as exc:
            self._complain(exc)

    def hold(self, key: str, until: float) -> None:
        ttl_ms = max(1, int((until - time.time()) * 1000) + 1000)
        try:
            self._hold(keys=[PREFIX + key], args=[repr(until), ttl_ms])
        except RedisError as exc:
            self._complain(exc)

    def _complain(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._complained >= self.complain_every:
            self._complained = now
            log.warning("shared back-offs unavailable (Redis); each worker honours only its own: %s", exc)
