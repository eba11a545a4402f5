"""A write's ``?wait=`` is woken by the worker's announcement that its job is final, not by polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_shim.jobs import service
from downsync.embedded import redis_answers, start_redis
from downsync.queue import announce_final
from downsync.settings import get_settings

MACHINE = "redis://127.0.0.1:6379/11"


@pytest.fixture
def redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    embedded = None
    url = MACHINE
    if not redis_answers(MACHINE):
        embedded = start_redis(tmp_path / "redis")
        url = embedded.url
    monkeypatch.setenv("DOWNSYNC_REDIS_URL", url)
    get_settings.cache_clear()
    service._async_redis.cache_clear()
    yield url
    get_settings.cache_clear()
    if embedded is not None:
        embedded.stop()


class Job:
    def __init__(self) -> None:
        self.final = False
        self.looks = 0


def test_the_announcement_wakes_the_wait(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job()

    def snapshot(job_id: str) -> Any:
        job.looks += 1
        return job

    monkeypatch.setattr(service, "snapshot", snapshot)

    async def scenario() -> float:
        waiting = asyncio.create_task(service.wait_for("j-1", 10))
        await asyncio.sleep(0.4)
        job.final = True
        announced = time.monotonic()
        await asyncio.to_thread(announce_final, redis_url, ["j-1"])
        await waiting
        return time.monotonic() - announced

    woke_after = asyncio.run(scenario())
    assert woke_after < 0.3, woke_after  # the safety look comes only after a second
    assert job.looks == 2  # once before waiting, once when woken: no polling in between


def test_without_redis_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNSYNC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    service._async_redis.cache_clear()
    job = Job()

    def snapshot(job_id: str) -> Any:
        job.looks += 1
        job.final = job.looks > 3
        return job

    monkeypatch.setattr(service, "snapshot", snapshot)
    started = time.monotonic()
    asyncio.run(service.wait_for("j-2", 10))
    assert job.looks == 4 and time.monotonic() - started < 2
    get_settings.cache_clear()
