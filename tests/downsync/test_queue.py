"""The broker as the API and the dispatcher use it: a broker that is down fails an enqueue at once."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from downsync.embedded import free_port, start_redis
from downsync.queue import CONVERGE_MANY_TASK, QUEUE, CeleryQueue, make_celery
from downsync.settings import Settings


def test_a_broker_that_is_down_is_reported_at_once_not_after_the_connect_retries() -> None:
    # Every write answers after its enqueue: while Redis is down, each one used to wait out 2 s of connect retries.
    queue = CeleryQueue(make_celery(Settings(environment="test", redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    for _ in range(3):
        started = time.monotonic()
        assert queue.enqueue([1, 2]) is False
        assert time.monotonic() - started < 0.5


def test_enqueueing_works_again_once_a_restarted_broker_is_back(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    try:
        queue = CeleryQueue(make_celery(Settings(environment="test", redis_url=server.url)))
        client = redis.Redis.from_url(server.url)
        assert queue.enqueue([1, 2]) is True
        assert client.llen(QUEUE) == 1
        server.stop()
        assert queue.enqueue([3]) is False
        server = start_redis(tmp_path / "redis", port=server.port)
        assert queue.enqueue([4, 5]) is True
        client = redis.Redis.from_url(server.url)
        pushed = [json.loads(m) for m in client.lrange(QUEUE, 0, -1)]
        # Celery's own task message, carrying both placements.
        assert [m["headers"]["task"] for m in pushed] == [CONVERGE_MANY_TASK]
        assert [json.loads(base64.b64decode(m["body"]))[0][0] for m in pushed] == [[4, 5]]
    finally:
        server.stop()


def test_many_writes_enqueue_at_once_without_running_out_of_broker_connections(tmp_path: Path) -> None:
    # A busy API enqueues from 40 threads; kombu's own channel pool allows 10 connections and failed the rest.
    server = start_redis(tmp_path / "redis")
    try:
        queue = CeleryQueue(make_celery(Settings(environment="test", redis_url=server.url)))
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda n: queue.enqueue(list(range(n * 10, n * 10 + 10))), range(400)))
        assert answers.count(True) == 400
        assert redis.Redis.from_url(server.url).llen(QUEUE) == 800  # 8 + 2 placements per write
    finally:
        server.stop()


def test_placements_share_messages_up_to_the_configured_number(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    try:
        queue = CeleryQueue(make_celery(Settings(environment="test", redis_url=server.url)), per_message=4)
        labels = {n: f"contoso postback E{n} m{n}@contoso.com" for n in range(1, 11)}
        assert queue.enqueue(list(range(1, 11)), labels) is True
        pushed = [json.loads(m) for m in reversed(redis.Redis.from_url(server.url).lrange(QUEUE, 0, -1))]
        assert [json.loads(base64.b64decode(m["body"]))[0][0] for m in pushed] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
        assert len({m["properties"]["delivery_tag"] for m in pushed}) == 3
        # Flower shows each placement of a message by its label.
        assert pushed[2]["headers"]["argsrepr"] == (
            "([(9, 'contoso postback E9 m9@contoso.com'), (10, 'contoso postback E10 m10@contoso.com')],)"
        )
    finally:
        server.stop()
