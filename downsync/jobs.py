"""Accepting writes and recording their results: the durable half of every postback and meeting.

A write is accepted by bumping its event's version, replacing the desired state, pointing every
affected placement at the new version and adding a job with a pending result per listed mailbox.
The caller commits, then enqueues the returned placements. These functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from downsync.models import NO_ERROR, PENDING, Event, Job, JobResult, Placement, utcnow


@dataclass(frozen=True)
class Listed:
    """A mailbox as the caller wrote it (echoed back) and as the store compares it."""

    email: str

    @property
    def mailbox(self) -> str:
        return self.email.strip().lower()


@dataclass(frozen=True)
class Accepted:
    job: Job
    placement_ids: list[int]


def _locked_event(session: Session, tenant_id: int, kind: str, event_id: str) -> Event:
    """The event's row, locked and read fresh (never a copy the session loaded before the lock)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        # Two first writes for one event id at once: one inserts, the other finds the row and waits for its lock.
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.exec(  # type: ignore[call-overload]
            insert(Event)
            .values(
                tenant_id=tenant_id,
                kind=kind,
                event_id=event_id,
                version=0,
                desired={},
                present=[],
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "event_id"])
        )
    query = select(Event).where(Event.tenant_id == tenant_id, Event.kind == kind, Event.event_id == event_id)
    return session.exec(query.with_for_update().execution_options(populate_existing=True)).one()


def find_event(session: Session, tenant_id: int, kind: str, event_id: str) -> Event | None:
    query = select(Event).where(Event.tenant_id == tenant_id, Event.kind == kind, Event.event_id == event_id)
    return session.exec(query).first()


def lock_event(session: Session, event_pk: int) -> None:
    """Every transaction that writes an event's placements or results takes the event's row lock first.

    One lock order for the API (accepting writes) and the workers (recording outcomes) means they queue
    behind each other instead of deadlocking on placement rows taken in different orders.
    """
    session.exec(select(Event.id).where(Event.id == event_pk).with_for_update()).first()


def accept_write(
    session: Session,
    *,
    tenant_id: int,
    kind: str,
    operation: str,
    event_id: str,
    desired: dict[str, Any] | Callable[[Event], dict[str, Any]] | None,
    present: Sequence[str],
    listed: Sequence[Listed],
    correlation_id: str,
    precondition: Callable[[Event], None] | None = None,
) -> Accepted:
    """Record one accepted write; ``present`` are the mailboxes that must hold the event afterwards.

    ``precondition`` sees the event under its lock (a new one has version 0) and may refuse the write
    by raising; nothing is then recorded. ``desired`` may be a function of the locked event, for writes
    that change part of the current state.
    """
    event = _locked_event(session, tenant_id, kind, event_id)
    if precondition is not None:
        precondition(event)
    if callable(desired):
        desired = desired(event)
    event.version += 1
    if desired is not None:
        event.desired = desired
    event.present = sorted({m.strip().lower() for m in present})
    event.updated_at = utcnow()
    session.add(event)
    assert event.id is not None

    existing = {p.mailbox: p for p in session.exec(select(Placement).where(Placement.event_pk == event.id))}
    affected = set(existing) | set(event.present) | {entry.mailbox for entry in listed}
    for mailbox in sorted(affected):
        placement = existing.get(mailbox) or Placement(tenant_id=tenant_id, event_pk=event.id, mailbox=mailbox)
        placement.target_version = event.version
        placement.attempts = 0
        placement.enqueued_at = utcnow()
        placement.updated_at = utcnow()
        session.add(placement)

    job = Job(
        id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        kind=kind,
        operation=operation,
        event_pk=event.id,
        event_id=event_id,
        version=event.version,
        correlation_id=correlation_id,
    )
    session.add(job)
    session.flush()
    for position, entry in enumerate(listed):
        session.add(
            JobResult(job_id=job.id, tenant_id=tenant_id, position=position, email=entry.email, mailbox=entry.mailbox)
        )
    session.flush()
    ids = session.exec(
        select(Placement.id).where(Placement.event_pk == event.id, col(Placement.mailbox).in_(affected))
    ).all()
    return Accepted(job=job, placement_ids=sorted(i for i in ids if i is not None))


def job_state(codes: Iterable[str]) -> str:
    codes = list(codes)
    if not codes:
        return "succeeded"
    if any(code == PENDING for code in codes):
        return "pending"
    ok = sum(code == NO_ERROR for code in codes)
    return "succeeded" if ok == len(codes) else "failed" if ok == 0 else "partial"


def refresh_jobs(session: Session, job_ids: Iterable[str]) -> None:
    """Set the state of each job from its results' codes."""
    # The job row is locked before its results are read: two workers finishing the last two mailboxes of a
    # job at once would otherwise each see the other's result still pending, and neither would close the job.
    for job_id in sorted(set(job_ids)):
        job = session.exec(select(Job).where(Job.id == job_id).with_for_update()).first()
        if job is None:
            continue
        codes = session.exec(select(JobResult.error_code).where(JobResult.job_id == job_id)).all()
        state = job_state(codes)
        if state != job.state:
            job.state = state
            job.finished_at = None if state == "pending" else utcnow()
            session.add(job)


def pending_results(session: Session, placement: Placement, up_to_version: int) -> list[JobResult]:
    """The results still waiting for this placement, from jobs the given version covers."""
    query = (
        select(JobResult)
        .join(Job, Job.id == JobResult.job_id)  # type: ignore[arg-type]
        .where(
            Job.event_pk == placement.event_pk,
            Job.version <= up_to_version,
            JobResult.mailbox == placement.mailbox,
            JobResult.error_code == PENDING,
        )
    )
    return list(session.exec(query).all())


def record_attempt(session: Session, placement: Placement, target: int, code: str | None, message: str | None) -> None:
    """One try at converging ``placement`` to ``target``: ``code`` None means it will be tried again."""
    now = utcnow()
    placement.attempts += 1
    placement.updated_at = now
    touched = set()
    for result in pending_results(session, placement, target):
        result.attempts += 1
        result.message = message
        result.updated_at = now
        if code is not None:
            result.error_code = code
        session.add(result)
        touched.add(result.job_id)
    if code is not None:
        placement.done_version = max(placement.done_version, target)
        placement.last_code = code
    else:
        placement.enqueued_at = now  # a retry is scheduled: the task lives on, the sweep leaves it be
    session.add(placement)
    refresh_jobs(session, touched)


def reopen_failed(session: Session, job: Job) -> list[int]:
    """Put every result of the job that is not NoError back to pending; returns the placements to run."""
    lock_event(session, job.event_pk)
    failed = session.exec(
        select(JobResult).where(
            JobResult.job_id == job.id, JobResult.error_code != NO_ERROR, JobResult.error_code != PENDING
        )
    ).all()
    mailboxes = {r.mailbox for r in failed}
    for result in failed:
        result.error_code = PENDING
        result.message = None
        result.updated_at = utcnow()
        session.add(result)
    placements = session.exec(
        select(Placement).where(Placement.event_pk == job.event_pk, col(Placement.mailbox).in_(mailboxes))
    ).all()
    event = session.get(Event, job.event_pk)
    assert event is not None
    for placement in placements:  # the caller took the event's lock before touching the results
        # Re-run towards the event's current desired state, which may be newer than this job.
        placement.target_version = max(placement.target_version, event.version)
        placement.done_version = min(placement.done_version, placement.target_version - 1)
        placement.attempts = 0
        placement.enqueued_at = utcnow()
        session.add(placement)
    if failed:
        job.state, job.finished_at = "pending", None
        session.add(job)
    return sorted(p.id for p in placements if p.id is not None)


def stale_placements(session: Session, older_than: datetime, limit: int = 1000) -> list[Placement]:
    """Placements still short of their target whose task has not shown life since ``older_than``."""
    query = (
        select(Placement)
        .where(Placement.done_version < Placement.target_version)
        .where((Placement.enqueued_at == None) | (Placement.enqueued_at < older_than))  # noqa: E711
        .order_by(col(Placement.id))
        .limit(limit)
        # Rows a writer holds are busy, not lost: skip them rather than wait and risk a lock cycle.
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query).all())


def count_pending(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(Placement).where(Placement.done_version < Placement.target_version)
    ).one()


def failed_jobs_since(session: Session, tenant_id: int | None, since: datetime) -> list[Job]:
    query = select(Job).where(col(Job.state).in_(["failed", "partial"]), Job.created_at >= since)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(Job.created_at))).all())
