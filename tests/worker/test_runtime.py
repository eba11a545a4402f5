"""A message's placements run side by side, never more at once in a process than the worker's concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from downsync.core.converge import Step
from worker import runtime


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.seen: list[int] = []

    def run(self, placement_id: int) -> Step:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.seen.append(placement_id)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return Step("idle" if placement_id % 3 == 0 else "done")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(runtime, "converger", lambda: recorder)
    runtime.placements_pool.cache_clear()
    yield recorder
    runtime.placements_pool().shutdown()
    runtime.placements_pool.cache_clear()


def test_placements_of_messages_share_the_processs_threads(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    monkeypatch.setattr(runtime, "side_by_side", 3)
    # Four messages held at once (four Celery threads) still converge at most three placements at a time.
    with ThreadPoolExecutor(4) as celery_threads:
        summaries = list(celery_threads.map(runtime.converge_many, [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]))
    assert sorted(recorder.seen) == list(range(1, 11))
    assert recorder.peak == 3
    assert summaries == ["2 done, 1 idle", "2 done", "1 idle", "3 done, 1 idle"]


def test_under_a_pool_of_processes_a_message_runs_one_placement_after_the_other(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    monkeypatch.setattr(runtime, "side_by_side", 1)
    assert runtime.converge_many([1, 2, 4]) == "3 done"
    assert recorder.seen == [1, 2, 4] and recorder.peak == 1


def test_each_tenants_connections_serve_as_many_placements_as_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "side_by_side", 16)
    runtime.converger.cache_clear()
    try:
        assert runtime.converger().tenants.calls_at_once == 16  # type: ignore[attr-defined]
    finally:
        runtime.converger.cache_clear()
