"""Accepting a write on both stores: the event's version, its placements and the job's results, whichever statement
path recorded them (one upsert without a precondition, lock-then-update with one; arrays on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from downsync.db import get_engine
from downsync.jobs import Accepted, Listed, accept_write
from downsync.models import Event, JobResult, Placement, Tenant
from tests.support.stack import database, postgres_answers


@pytest.fixture(params=["embedded", "machine"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "machine" and not postgres_answers():
        pytest.skip("the machine's PostgreSQL does not answer; SQLite covers this test")
    with database(request.param, tmp_path) as db:
        engine = get_engine.__wrapped__(db.url)  # type: ignore[attr-defined]
        SQLModel.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Tenant(id=1, name="acme"))
            session.commit()
        yield engine
        engine.dispose()


def accept(engine: Engine, event_id: str, emails: list[str], **kw: Any) -> Accepted:
    listed = [Listed(e) for e in emails]
    with Session(engine) as session:
        accepted = accept_write(
            session,
            tenant_id=1,
            kind="postback",
            operation=kw.pop("operation", "create"),
            event_id=event_id,
            desired=kw.pop("desired", {"subject": event_id}),
            present=kw.pop("present", [entry.mailbox for entry in listed]),
            listed=listed,
            correlation_id="c",
            **kw,
        )
        session.commit()
    return accepted


def placements(engine: Engine, event_id: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(Placement.mailbox, Placement.target_version)
            .join(Event, Event.id == Placement.event_pk)  # type: ignore[arg-type]
            .where(Event.event_id == event_id)
        ).all()
    return {mailbox: version for mailbox, version in rows}


def test_a_new_event_then_a_move_retargets_every_placement(engine: Engine) -> None:
    first = accept(engine, "e1", ["Ann@X.test", "bob@x.test"])
    assert first.job.version == 1 and len(first.placement_ids) == 2
    assert sorted(first.labels.values()) == ["postback e1 ann@x.test", "postback e1 bob@x.test"]
    # Bob leaves, Cy joins: Bob's placement converges to the new version too (to remove the item).
    second = accept(engine, "e1", ["ann@x.test", "cy@x.test", "bob@x.test"], present=["ann@x.test", "cy@x.test"])
    assert second.job.version == 2
    assert placements(engine, "e1") == {"ann@x.test": 2, "bob@x.test": 2, "cy@x.test": 2}
    assert set(second.placement_ids) >= set(first.placement_ids) and len(second.placement_ids) == 3
    with Session(engine) as session:
        event = session.exec(select(Event).where(Event.event_id == "e1")).one()  # type: ignore[call-overload]
        assert (event[0].version, event[0].present) == (2, ["ann@x.test", "cy@x.test"])
        results = session.execute(
            select(JobResult.position, JobResult.email, JobResult.mailbox, JobResult.version)
            .where(JobResult.job_id == second.job.id)
            .order_by(JobResult.position)  # type: ignore[arg-type]
        ).all()
    assert [tuple(r) for r in results] == [
        (0, "ann@x.test", "ann@x.test", 2),
        (1, "cy@x.test", "cy@x.test", 2),
        (2, "bob@x.test", "bob@x.test", 2),
    ]


def test_a_write_with_a_precondition_sees_the_locked_event_and_keeps_its_state_when_desired_is_none(
    engine: Engine,
) -> None:
    accept(engine, "e2", ["ann@x.test"], desired={"subject": "kept"})
    seen: list[int] = []
    removal = accept(
        engine, "e2", ["ann@x.test"], desired=None, present=[], precondition=lambda e: seen.append(e.version)
    )
    assert seen == [1] and removal.job.version == 2
    with Session(engine) as session:
        event = session.exec(select(Event).where(Event.event_id == "e2")).one()  # type: ignore[call-overload]
    assert (event[0].desired, event[0].present) == ({"subject": "kept"}, [])


def test_a_thousand_mailboxes_each_placed_once_with_a_result_in_order(engine: Engine) -> None:
    emails = [f"User{n:04d}@x.test" for n in range(1000)]
    accepted = accept(engine, "big", emails)
    assert len(accepted.placement_ids) == 1000 == len(set(accepted.placement_ids))
    assert placements(engine, "big") == {e.lower(): 1 for e in emails}
    with Session(engine) as session:
        positions = session.execute(
            select(JobResult.position, JobResult.email).where(JobResult.job_id == accepted.job.id)
        ).all()
    assert sorted(positions) == list(enumerate(emails))


def test_first_writes_of_one_event_at_once_make_one_event_and_successive_versions(engine: Engine) -> None:
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda n: accept(engine, "race", [f"p{n}@x.test"]).job.version, range(4)))
    assert sorted(versions) == [1, 2, 3, 4]
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Event).where(Event.event_id == "race")).scalar() == 1
    assert len(placements(engine, "race")) == 4
