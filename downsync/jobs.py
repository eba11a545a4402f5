"""Accepting writes and closing jobs: the durable half of every postback and meeting.

A write is accepted by bumping its event's version, replacing the desired state, pointing every
affected placement at the new version (due now) and adding a job with a pending result per listed
mailbox. The caller commits, then enqueues the returned placements. These functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Integer, Text, bindparam, case, func, insert, literal, update

# Five columns: more than sqlmodel's select and exec are typed for.
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from downsync import metrics
from downsync.db import run
from downsync.models import NO_ERROR, PENDING, Event, Job, JobResult, Placement, Tenant, utcnow
from downsync.webhooks import service as webhooks


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
    # The job's results as the caller listed them: the answer when nothing is final yet.
    listed: tuple[Listed, ...] = ()
    # Each placement named for people (kind, event, mailbox), as Flower shows the tasks.
    labels: dict[int, str] = field(default_factory=dict)


def _event_statements(dialect: str) -> tuple[Any, Any]:
    """An event's row locked (created if new) and read in one statement; and the same while writing a new state
    into it. Built once per dialect: accepting a write runs one of them while the caller waits.

    Two first writes for one event id at once: one inserts, the other's conflict becomes an update of the row,
    which waits for the first's lock and then reads (or bumps) what the first committed.
    """
    insert_event: Any = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(Event)
    key = ["tenant_id", "kind", "event_id"]
    identity = {
        "tenant_id": bindparam("e_tenant"),
        "kind": bindparam("e_kind"),
        "event_id": bindparam("e_event"),
        "updated_at": bindparam("e_now", type_=UTCDateTime()),
    }
    lock: Any = insert_event.values(**identity, version=0, desired={}, present=[], correlation_id="-")
    lock = lock.on_conflict_do_update(index_elements=key, set_={"tenant_id": lock.excluded.tenant_id}).returning(
        col(Event.id), col(Event.version), col(Event.desired), col(Event.present)
    )
    bump: Any = insert_event.values(
        **identity,
        version=1,
        desired=bindparam("e_desired", type_=JSON()),
        present=bindparam("e_present", type_=JSON()),
        correlation_id=bindparam("e_correlation"),
    )
    fields = ("desired", "present", "correlation_id", "updated_at")
    bump = bump.on_conflict_do_update(
        index_elements=key,
        set_={"version": col(Event.version) + 1, **{name: getattr(bump.excluded, name) for name in fields}},
    ).returning(col(Event.id), col(Event.version))
    return lock, bump


_EVENT = {dialect: _event_statements(dialect) for dialect in ("postgresql", "sqlite")}
_SET_EVENT = (
    update(Event)
    .where(col(Event.id) == bindparam("e_pk"))
    .values(
        version=bindparam("e_version"),
        desired=bindparam("e_desired", type_=JSON()),
        present=bindparam("e_present", type_=JSON()),
        correlation_id=bindparam("e_correlation"),
        updated_at=bindparam("e_now", type_=UTCDateTime()),
    )
)
_DUE = {
    "target_version": bindparam("p_target"),
    "due_at": bindparam("p_now", type_=UTCDateTime()),
    "first_tried_at": None,
    "enqueued_at": bindparam("p_now", type_=UTCDateTime()),
    "updated_at": bindparam("p_now", type_=UTCDateTime()),
}
_RETARGET = (
    update(Placement)
    .where(col(Placement.event_pk) == bindparam("p_event"))
    .values(**_DUE)
    .returning(col(Placement.id), col(Placement.mailbox))
)
_PLACEMENTS = sa_select(col(Placement.id), col(Placement.mailbox)).where(
    col(Placement.event_pk) == bindparam("p_event")
)
_INSERT_PLACEMENTS = insert(Placement)
_INSERT_JOB = insert(Job)
_INSERT_RESULTS = insert(JobResult)


def _bulk_statements() -> tuple[Any, Any]:
    """PostgreSQL: a write's new placements and its job's results inserted by one statement each, the mailboxes
    passed as arrays and unnested by the server. Row by row, a 1000-mailbox write bound and sent 4000 parameters
    per table (a third of its accept time)."""
    text_array = ARRAY(Text())
    now = bindparam("b_now", type_=UTCDateTime())
    mailboxes = func.unnest(bindparam("b_mailboxes", type_=text_array)).table_valued("mailbox").render_derived("fresh")
    placements = insert(Placement).from_select(
        [
            "tenant_id",
            "event_pk",
            "mailbox",
            "done_version",
            "attempts",
            "target_version",
            "due_at",
            "enqueued_at",
            "updated_at",
        ],
        sa_select(
            bindparam("b_tenant", type_=Integer()),
            bindparam("b_event", type_=Integer()),
            mailboxes.c.mailbox,
            literal(0),
            literal(0),
            bindparam("b_version", type_=Integer()),
            now,
            now,
            now,
        ).select_from(mailboxes),
    )
    listed = (
        func.unnest(bindparam("b_emails", type_=text_array), bindparam("b_mailboxes", type_=text_array))
        .table_valued("email", "mailbox", with_ordinality="position")
        .render_derived("listed")
    )
    results = insert(JobResult).from_select(
        [
            "job_id",
            "tenant_id",
            "event_pk",
            "version",
            "position",
            "email",
            "mailbox",
            "error_code",
            "attempts",
            "updated_at",
        ],
        sa_select(
            bindparam("b_job", type_=Text()),
            bindparam("b_tenant", type_=Integer()),
            bindparam("b_event", type_=Integer()),
            bindparam("b_version", type_=Integer()),
            listed.c.position - 1,
            listed.c.email,
            listed.c.mailbox,
            literal(PENDING),
            literal(0),
            now,
        ).select_from(listed),
    )
    return placements.returning(col(Placement.id), col(Placement.mailbox)), results


_BULK_PLACEMENTS, _BULK_RESULTS = _bulk_statements()


def _add_placements(
    session: Session, tenant_id: int, event_pk: int, version: int, fresh: list[str], now: datetime
) -> list[tuple[int, str]]:
    """Inserts the event's new placements, due now; returns every placement of the event that is new."""
    if session.get_bind().dialect.name == "postgresql":
        params = {"b_tenant": tenant_id, "b_event": event_pk, "b_version": version, "b_now": now, "b_mailboxes": fresh}
        return [(pk, mailbox) for pk, mailbox in run(session, _BULK_PLACEMENTS, params)]
    run(
        session,
        _INSERT_PLACEMENTS,
        [
            {
                "tenant_id": tenant_id,
                "event_pk": event_pk,
                "mailbox": m,
                "done_version": 0,
                "attempts": 0,
                "target_version": version,
                "due_at": now,
                "first_tried_at": None,
                "enqueued_at": now,
                "updated_at": now,
            }
            for m in fresh
        ],
    )
    added = set(fresh)
    return [(pk, mailbox) for pk, mailbox in run(session, _PLACEMENTS, {"p_event": event_pk}) if mailbox in added]


def _add_results(
    session: Session, job: Job, tenant_id: int, event_pk: int, listed: Sequence[Listed], now: datetime
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        params = {
            "b_job": job.id,
            "b_tenant": tenant_id,
            "b_event": event_pk,
            "b_version": job.version,
            "b_now": now,
            "b_emails": [entry.email for entry in listed],
            "b_mailboxes": [entry.mailbox for entry in listed],
        }
        run(session, _BULK_RESULTS, params)
        return
    run(
        session,
        _INSERT_RESULTS,
        [
            {
                "job_id": job.id,
                "tenant_id": tenant_id,
                "event_pk": event_pk,
                "version": job.version,
                "position": position,
                "email": entry.email,
                "mailbox": entry.mailbox,
                "error_code": PENDING,
                "attempts": 0,
                "updated_at": now,
            }
            for position, entry in enumerate(listed)
        ],
    )


def _locked_event(session: Session, tenant_id: int, kind: str, event_id: str, now: datetime) -> Event:
    """The event's row, locked (created if new) and read in one statement; a detached copy of it is returned."""
    lock, _ = _EVENT[session.get_bind().dialect.name]
    params = {"e_tenant": tenant_id, "e_kind": kind, "e_event": event_id, "e_now": now}
    row = run(session, lock, params).one()
    return Event(
        id=row[0],
        tenant_id=tenant_id,
        kind=kind,
        event_id=event_id,
        version=row[1],
        desired=row[2] or {},
        present=row[3] or [],
    )


def find_event(session: Session, tenant_id: int, kind: str, event_id: str) -> Event | None:
    query = select(Event).where(Event.tenant_id == tenant_id, Event.kind == kind, Event.event_id == event_id)
    return session.exec(query).first()


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
    now: datetime | None = None,
) -> Accepted:
    """Record one accepted write; ``present`` are the mailboxes that must hold the event afterwards.

    ``precondition`` sees the event under its lock (a new one has version 0) and may refuse the write
    by raising; nothing is then recorded. ``desired`` may be a function of the locked event, for writes
    that change part of the current state.
    """
    now = now or utcnow()
    mailboxes = sorted({m.strip().lower() for m in present})
    # Core statements built once, a handful of round trips: a write is accepted while the caller waits.
    if precondition is None and isinstance(desired, dict):
        # Nothing to look at first: the row is locked and given its new state by one statement.
        _, bump = _EVENT[session.get_bind().dialect.name]
        params = {"e_tenant": tenant_id, "e_kind": kind, "e_event": event_id, "e_now": now}
        state = {"e_desired": desired, "e_present": mailboxes, "e_correlation": correlation_id[:200]}
        event_pk, version = run(session, bump, {**params, **state}).one()
    else:
        event = _locked_event(session, tenant_id, kind, event_id, now)
        if precondition is not None:
            precondition(event)
        if callable(desired):
            desired = desired(event)
        event_pk, version = event.id, event.version + 1
        values = {
            "e_pk": event_pk,
            "e_version": version,
            "e_desired": event.desired if desired is None else desired,
            "e_present": mailboxes,
            "e_correlation": correlation_id[:200],
            "e_now": now,
        }
        run(session, _SET_EVENT, values)
    # Every mailbox that held or must hold the event converges to the new version, whatever it was doing; a new
    # event (now at version 1) has no placements yet.
    due = {"p_target": version, "p_now": now}
    rows: list[tuple[int, str]] = []
    if version > 1:
        rows = [(pk, mailbox) for pk, mailbox in run(session, _RETARGET, {"p_event": event_pk, **due})]
    fresh = sorted((set(mailboxes) | {entry.mailbox for entry in listed}) - {mailbox for _, mailbox in rows})
    if fresh:
        rows += _add_placements(session, tenant_id, event_pk, version, fresh, now)
    job = Job(
        id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        kind=kind,
        operation=operation,
        event_pk=event_pk,
        event_id=event_id,
        version=version,
        correlation_id=correlation_id,
        state="pending" if listed else "succeeded",
        created_at=now,
        finished_at=None if listed else now,
    )
    run(session, _INSERT_JOB, job.model_dump())
    if listed:
        _add_results(session, job, tenant_id, event_pk, listed, now)
    labels = {pid: f"{kind} {event_id} {mailbox}" for pid, mailbox in rows}
    return Accepted(job=job, placement_ids=sorted(labels), listed=tuple(listed), labels=labels)


def mark_unsent(session: Session, placement_ids: Sequence[int]) -> None:
    """The broker did not take these placements' messages (it is down): the dispatcher sends them at its first tick
    once the broker answers, instead of waiting out the redelivery time of messages that never left."""
    if placement_ids:
        session.exec(update(Placement).where(col(Placement.id).in_(list(placement_ids))).values(enqueued_at=None))


def job_state(total: int, pending: int, ok: int) -> str:
    if pending:
        return "pending"
    return "succeeded" if ok == total else "failed" if ok == 0 else "partial"


def _close_statements() -> tuple[Any, Any, Any]:
    """``close_jobs``'s statements, built once: one runs for every placement that finishes."""
    job: Any = bindparam("job")
    any_pending = select(select(JobResult.id).where(JobResult.job_id == job, JobResult.error_code == PENDING).exists())
    tally = select(
        func.count(),
        func.coalesce(func.sum(case((col(JobResult.error_code) == PENDING, 1), else_=0)), 0),
        func.coalesce(func.sum(case((col(JobResult.error_code) == NO_ERROR, 1), else_=0)), 0),
    ).where(JobResult.job_id == job)
    close = (
        update(Job)
        .where(col(Job.id) == job, col(Job.state) == "pending")
        .values(state=bindparam("new_state"), finished_at=bindparam("finished", type_=UTCDateTime()))
        .returning(col(Job.kind), col(Job.created_at))
    )
    return any_pending, tally, close


_ANY_PENDING, _TALLY, _CLOSE = _close_statements()


def close_jobs(session: Session | Connection, job_ids: Iterable[str]) -> list[str]:
    """Give every job whose results are all final its final state; returns those this call closed. Run after the
    results were committed, so of two workers finishing a job's last two mailboxes at once, the later one sees both
    and closes it."""
    closed_now: list[str] = []
    for job_id in sorted(set(job_ids)):
        if run(session, _ANY_PENDING, {"job": job_id}).scalar_one():
            continue  # the common case, while a large job's other mailboxes are under way: one index probe
        total, pending, ok = run(session, _TALLY, {"job": job_id}).one()
        if pending:
            continue
        now, state = utcnow(), job_state(total, pending, ok)
        closed = run(session, _CLOSE, {"job": job_id, "new_state": state, "finished": now}).first()
        if closed is not None:  # this closer, not a concurrent one, closed it: counted once
            metrics.JOB_FINAL_SECONDS.labels(closed[0], state).observe((now - closed[1]).total_seconds())
            # Its deliveries commit (or not) with the close; an ORM session joins a bare connection's transaction.
            webhooks.job_closed(session if isinstance(session, Session) else Session(bind=session), job_id, now)
            closed_now.append(job_id)
    return closed_now


def unclosed_jobs(session: Session, limit: int = 200) -> list[str]:
    """Jobs still marked pending although no result is: their closer was interrupted after committing."""
    still_pending = select(JobResult.id).where(JobResult.job_id == Job.id, JobResult.error_code == PENDING).exists()
    query = select(Job.id).where(Job.state == "pending", ~still_pending).limit(limit)
    return list(session.exec(query).all())


def reopen_failed(session: Session, job: Job) -> list[int]:
    """Put every result of the job that is not NoError back to pending; returns the placements to run."""
    failed = session.exec(
        select(JobResult.mailbox).where(
            JobResult.job_id == job.id, JobResult.error_code != NO_ERROR, JobResult.error_code != PENDING
        )
    ).all()
    mailboxes = sorted(set(failed))
    if not mailboxes:
        return []
    now = utcnow()
    event = session.exec(select(Event).where(Event.id == job.event_pk).with_for_update()).one()
    # Placements before results: the order the workers take them in.
    placements = session.exec(
        update(Placement)  # type: ignore[call-overload]
        .where(col(Placement.event_pk) == job.event_pk, col(Placement.mailbox).in_(mailboxes))
        .values(
            # Re-run towards the event's current desired state, which may be newer than this job.
            target_version=event.version,
            done_version=case(
                (col(Placement.done_version) > event.version - 1, event.version - 1), else_=Placement.done_version
            ),
            due_at=now,
            first_tried_at=None,
            enqueued_at=now,
            updated_at=now,
        )
        .returning(Placement.id)
    ).all()
    session.exec(
        update(JobResult)
        .where(
            col(JobResult.job_id) == job.id,
            col(JobResult.error_code) != NO_ERROR,
            col(JobResult.error_code) != PENDING,
        )
        .values(error_code=PENDING, message=None, updated_at=now)
    )
    job.state, job.finished_at = "pending", None
    session.add(job)
    return sorted(row[0] for row in placements)


def count_pending(session: Session) -> int:
    """Placements with work due or scheduled (reaching a target, a retry, or a late-landing check)."""
    return session.exec(select(func.count()).select_from(Placement).where(col(Placement.due_at).is_not(None))).one()


def failed_jobs_since(session: Session, tenant_id: int | None, since: datetime) -> list[Job]:
    query = select(Job).where(col(Job.state).in_(["failed", "partial"]), Job.created_at >= since)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(Job.created_at))).all())


def backlog(session: Session, now: datetime) -> tuple[int, float | None]:
    """How many placements have work due or scheduled, and how long the oldest due one has waited (seconds)."""
    count, oldest = session.exec(
        select(func.count(), func.min(Placement.due_at)).where(col(Placement.due_at).is_not(None))
    ).one()
    if oldest is None:
        return int(count), None
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
    return int(count), max(0.0, (now - oldest).total_seconds())


def placement_labels(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """Placements named for people: tenant, kind, event id, mailbox."""
    rows = session.execute(
        sa_select(col(Placement.id), col(Tenant.name), col(Event.kind), col(Event.event_id), col(Placement.mailbox))
        .join(Event, col(Event.id) == col(Placement.event_pk))
        .join(Tenant, col(Tenant.id) == col(Placement.tenant_id))
        .where(col(Placement.id).in_(ids))
    ).all()
    return {pid: f"{tenant} {kind} {event_id} {mailbox}" for pid, tenant, kind, event_id, mailbox in rows if pid}
