"""A write the store took is never answered as failed, whatever fails after (or during) the commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from api_shim import writes
from downsync.jobs import Accepted, Listed
from downsync.models import Job
from downsync.settings import Settings

SETTINGS = Settings(environment="test")
DOWN = OperationalError("SELECT", {}, Exception("the database system is shutting down"))


class Queue:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def enqueue(self, placement_ids: Sequence[int], labels: Any = None) -> bool:
        self.sent += placement_ids
        return False  # the broker is down too: the dispatcher sends it later


class Session:
    def __init__(self, commit_error: Exception | None = None) -> None:
        self.commit_error = commit_error

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def commit(self) -> None:
        if self.commit_error:
            raise self.commit_error


def accepted() -> Accepted:
    job = Job(
        id="j1",
        tenant_id=1,
        kind="postback",
        operation="create",
        event_pk=1,
        event_id="e",
        version=1,
        correlation_id="c",
    )
    return Accepted(job=job, placement_ids=[7, 8], listed=(Listed("Alice@X.com"), Listed("bob@x.com")))


@pytest.fixture(autouse=True)
def unsent(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Placements the API marked unsent (no store here: recorded instead)."""
    marked: list[list[int]] = []
    monkeypatch.setattr(writes, "_unsent", marked.append)
    return marked


def finish(session: Session, wait: float | None, queue: Queue) -> Any:
    """The write endpoints' tail, the unit of work being ``session``."""
    writes.open_session = lambda: session  # type: ignore[assignment,return-value]
    return asyncio.run(writes.accept(lambda s: accepted(), wait, SETTINGS, queue))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def own_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "open_session", writes.open_session)  # put back after each test


def run(session: Session, wait: float | None) -> Any:
    queue = Queue()
    response = finish(session, wait, queue)
    assert queue.sent == [7, 8]
    return response


def body(response: Any) -> Any:
    return json.loads(response.body)


def test_the_store_failing_after_the_commit_still_answers_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreadable(job_id: str, seconds: float) -> Any:
        raise DOWN

    monkeypatch.setattr(writes, "wait_for", unreadable)
    response = run(Session(), wait=5)
    assert response.status_code == 202 and response.headers["Location"].endswith("/jobs/j1")
    assert body(response) == [
        {"email": "Alice@X.com", "errorCode": "Pending"},
        {"email": "bob@x.com", "errorCode": "Pending"},
    ]


def test_wait_zero_answers_without_reading_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(job_id: str, seconds: float) -> Any:
        raise AssertionError("read")

    monkeypatch.setattr(writes, "wait_for", never)
    assert run(Session(), wait=0).status_code == 202


def test_a_lost_commit_answer_is_looked_up_before_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "job_exists", lambda job_id: True)
    response = run(Session(commit_error=DOWN), wait=0)
    assert response.status_code == 202 and response.headers["X-Job-Id"] == "j1"

    monkeypatch.setattr(writes, "job_exists", lambda job_id: False)
    with pytest.raises(OperationalError):
        finish(Session(commit_error=DOWN), 0, Queue())


class StoreBack:
    """A store that is unreachable until ``at`` seconds on a fake clock, then answers whether it holds the job."""

    def __init__(self, at: float, holds: bool) -> None:
        self.now = 0.0
        self.at = at
        self.holds = holds

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def job_exists(self, job_id: str) -> bool:
        if self.now < self.at:
            raise DOWN
        return self.holds


def test_a_lost_commit_answer_waits_for_the_store_to_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL went away between the commit and its answer and is back 20 s later: the write is stored, so the
    # caller must not hear 503 (a refused write has changed nothing), however short its wait.
    store = StoreBack(at=20, holds=True)
    monkeypatch.setattr(writes, "_clock", store.clock)
    monkeypatch.setattr(writes, "_sleep", store.sleep)
    monkeypatch.setattr(writes, "job_exists", store.job_exists)
    response = run(Session(commit_error=DOWN), wait=0)
    assert response.status_code == 202 and response.headers["X-Job-Id"] == "j1"
    assert store.now >= 20


def test_a_lost_commit_is_refused_only_once_the_store_says_it_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    store = StoreBack(at=20, holds=False)
    monkeypatch.setattr(writes, "_clock", store.clock)
    monkeypatch.setattr(writes, "_sleep", store.sleep)
    monkeypatch.setattr(writes, "job_exists", store.job_exists)
    with pytest.raises(OperationalError):
        finish(Session(commit_error=DOWN), 0, Queue())
    assert 20 <= store.now < 21
    # Never an answer: after the longest time a caller may wait, it is refused all the same.
    store = StoreBack(at=10**6, holds=True)
    monkeypatch.setattr(writes, "_clock", store.clock)
    monkeypatch.setattr(writes, "_sleep", store.sleep)
    monkeypatch.setattr(writes, "job_exists", store.job_exists)
    with pytest.raises(OperationalError):
        finish(Session(commit_error=DOWN), 0, Queue())
    assert store.now >= writes.COMMIT_LOOKUP_SECONDS


def test_placements_the_broker_refused_are_marked_unsent_for_the_dispatcher(unsent: list[list[int]]) -> None:
    assert run(Session(), wait=0).status_code == 202  # the Queue stub's broker is down
    assert unsent == [[7, 8]]

    class Up(Queue):
        def enqueue(self, placement_ids: Sequence[int], labels: Any = None) -> bool:
            super().enqueue(placement_ids)
            return True

    finish(Session(), 0, Up())
    assert unsent == [[7, 8]]  # sent: nothing more to mark
