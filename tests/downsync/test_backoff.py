"""Back-offs shared through Redis: the later one holds, they expire, and a Redis that is down stops nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from downsync.backoff import PREFIX, SLOTS, RedisBackOffBoard
from downsync.core.throttle import FULL, AccountLimit
from downsync.embedded import free_port, redis_answers, start_redis

MACHINE = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if redis_answers(MACHINE):
        redis.Redis.from_url(MACHINE).flushdb()
        yield MACHINE
        return
    embedded = start_redis(tmp_path / "redis")
    yield embedded.url
    embedded.stop()


def test_the_later_back_off_holds_and_the_key_expires_after_it(redis_url: str) -> None:
    board = RedisBackOffBoard(redis_url)
    soon, later = time.time() + 0.5, time.time() + 0.8
    board.hold("bob@x.test", later)
    board.hold("bob@x.test", soon)  # a shorter back-off told meanwhile does not shorten it
    assert board.enter("bob@x.test", "t", time.time(), 5) == pytest.approx(later - time.time(), abs=0.05)
    assert board.enter("alice@x.test", "t", time.time(), 5) is None
    ttl = redis.Redis.from_url(redis_url).pttl(PREFIX + "bob@x.test")
    assert 0 < ttl <= 1800  # gone a second after the back-off: throttled-once mailboxes do not pile up


def test_one_turn_at_a_time_refused_during_a_back_off_and_lapsing_if_never_given_back(redis_url: str) -> None:
    board, now = RedisBackOffBoard(redis_url), time.time()
    assert board.enter("bob@x.test", "a", now, 0.3) is None
    assert board.enter("bob@x.test", "b", now, 0.3) == 0.0  # a's call is under way
    board.leave("bob@x.test", "b")  # not b's to give back
    assert board.enter("bob@x.test", "b", now, 0.3) == 0.0
    board.leave("bob@x.test", "a")
    assert board.enter("bob@x.test", "b", now, 0.3) is None
    time.sleep(0.4)  # b was killed holding it: the turn lapses
    board.hold("bob@x.test", now + 5)
    assert board.enter("bob@x.test", "c", now, 0.3) == pytest.approx(5.0)
    assert board.enter("alice@x.test", "c", now, 0.3) is None


def test_a_redis_that_is_down_grants_every_turn_at_once() -> None:
    board = RedisBackOffBoard(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    board.hold("bob@x.test", time.time() + 5)
    assert board.enter("bob@x.test", "a", time.time(), 5) is None
    board.leave("bob@x.test", "a")
    assert time.monotonic() - started < 2


def test_an_accounts_slots_are_shared_given_back_and_lapse_with_their_holder(redis_url: str) -> None:
    first, second = RedisBackOffBoard(redis_url), RedisBackOffBoard(redis_url)  # two worker processes
    account, now = AccountLimit("ews:https://mail.x.test/ews/exchange.asmx|svc", 2), time.time()
    assert first.enter("a@x.test", "ta", now, 0.4, account) is None
    assert second.enter("b@x.test", "tb", now, 5, account) is None
    assert first.enter("c@x.test", "tc", now, 5, account) == FULL  # two under way, whichever process holds them
    assert second.enter("c@x.test", "tc", now, 5) is None  # a call without the account's limit is not counted
    second.leave("c@x.test", "tc")
    assert first.enter("c@x.test", "tc", now, 5, AccountLimit("ews:another", 2)) is None  # nor another account's
    first.leave("c@x.test", "tc", AccountLimit("ews:another", 2))
    second.leave("b@x.test", "tb", account)
    assert first.enter("c@x.test", "tc", now, 5, account) is None  # b's slot given back
    assert second.enter("d@x.test", "td", now, 5, account) == FULL
    time.sleep(0.5)  # a's holder was killed: its slot lapses with its turn
    assert second.enter("d@x.test", "td", time.time(), 5, account) is None
    assert redis.Redis.from_url(redis_url).zcard(SLOTS + account.key) == 2
