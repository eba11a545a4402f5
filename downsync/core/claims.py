"""Placements claimed under a lease in the store: the fencing every write to a mailbox goes through.

A worker claims a due placement with one conditional UPDATE; while its lease holds, it alone may write
that mailbox's item, and its outcome is recorded only if the lease is still its own. A claim whose
holder vanished (killed, stalled, cut off from the store) ends when its lease expires, which is what
makes the work runnable again; whatever that holder sent may still land until then, so the next claim
inherits that moment as ``inflight_until``.

Two placements of one event whose addresses name one mailbox (``resolved``, the mailbox's primary address)
are *siblings*: one mailbox, converged by one of them at a time. A claim commits its lease before it looks
at its siblings' (``siblings``), and a placement's ``resolved`` is committed before its own look, so of two
siblings claimed at once at least one sees the other and steps aside (``Outcome.aside``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, case, exists, false, func, null, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from downsync.db import run
from downsync.models import PENDING, Event, JobResult, MailboxAddress, Placement


@dataclass(frozen=True)
class Claim:
    token: str
    placement_id: int
    tenant_id: int
    event_pk: int
    mailbox: str
    target: int  # the event version this claim converges to
    item_id: str | None
    attempts: int
    first_tried_at: datetime
    inflight_until: datetime | None
    kind: str
    event_id: str
    desired: dict[str, Any] | None  # None: the mailbox must not hold the event
    correlation_id: str = "-"
    # The primary address of the mailbox, once a claim resolved it (None before), and whether another placement of
    # the event had resolved to the same one when this claim was taken.
    resolved: str | None = None
    siblings: bool = False
    # The event's latest state and the addresses that must hold it, whatever this placement's own part.
    state: dict[str, Any] | None = None
    present: tuple[str, ...] = ()
    # Before ``resolved`` is pinned: the address cache's answer for ``mailbox``, when it has a fresh one.
    cached_primary: str | None = None


def _claim_statements() -> tuple[Any, Any, Any, Any]:
    """The claim's statements, built once with bind parameters: built per call they cost more CPU than PostgreSQL
    spends running them (a worker converges a placement in ~18 ms of CPU under one GIL)."""
    now = bindparam("now", type_=UTCDateTime())
    vanished = and_(
        col(Placement.lease_token).is_not(None),
        or_(col(Placement.inflight_until).is_(None), col(Placement.lease_expires_at) > col(Placement.inflight_until)),
    )
    take = (
        update(Placement)
        .where(
            col(Placement.id) == bindparam("pid"),
            col(Placement.due_at) <= now,
            or_(col(Placement.lease_expires_at).is_(None), col(Placement.lease_expires_at) < now),
        )
        .values(
            inflight_until=case((vanished, Placement.lease_expires_at), else_=Placement.inflight_until),
            lease_token=bindparam("token"),
            lease_expires_at=bindparam("expires", type_=UTCDateTime()),
            attempts=Placement.attempts + 1,
            first_tried_at=func.coalesce(Placement.first_tried_at, now),
            enqueued_at=None,
            updated_at=now,
            # A first claim that knows the mailbox from the address cache pins it in the same statement.
            resolved=func.coalesce(Placement.resolved, bindparam("primary")),
        )
        .returning(
            col(Placement.tenant_id),
            col(Placement.event_pk),
            col(Placement.mailbox),
            col(Placement.item_id),
            col(Placement.attempts),
            col(Placement.first_tried_at),
            col(Placement.inflight_until),
            col(Placement.resolved),
        )
    )
    columns = [col(c) for c in (Event.version, Event.kind, Event.event_id, Event.desired, Event.present)]
    columns.append(col(Event.correlation_id))
    of_event = col(Event.id) == bindparam("event_pk")
    # Siblings whose address was resolved before this claim: in the same statement, so the common case (none) costs
    # no round trip. One resolving now commits before it looks for this claim's lease (``pin_address``).
    sibling = exists().where(
        col(Placement.event_pk) == bindparam("event_pk"),
        col(Placement.resolved) == bindparam("resolved"),
        col(Placement.id) != bindparam("pid"),
    )
    pinned_event = sa_select(*columns, sibling.label("siblings"), null().label("primary")).where(of_event)
    uncached_event = sa_select(*columns, false().label("siblings"), null().label("primary")).where(of_event)
    # A claim that may pin: the event's row is locked first (as accepting a write and ``pin_address`` lock it), and
    # the event, the placement's mailbox, whether a sibling pinned the same one and the cache's answer read at once.
    other = aliased(Placement)
    pinned_sibling = exists().where(
        col(other.event_pk) == col(Placement.event_pk),
        col(other.resolved) == col(Placement.resolved),
        col(other.id) != col(Placement.id),
    )
    cached = (
        sa_select(func.coalesce(col(MailboxAddress.primary_address), col(MailboxAddress.address)))
        .where(
            col(MailboxAddress.tenant_id) == col(Placement.tenant_id),
            col(MailboxAddress.address) == col(Placement.mailbox),
            col(MailboxAddress.resolved_at) >= bindparam("since", type_=UTCDateTime()),
        )
        .scalar_subquery()
    )
    look = (
        sa_select(*columns, col(Placement.resolved), pinned_sibling.label("siblings"), cached.label("primary"))
        .join(Event, col(Event.id) == col(Placement.event_pk))
        .where(col(Placement.id) == bindparam("pid"))
        .with_for_update(of=Event)
    )
    return take, pinned_event, uncached_event, look


_TAKE, _PINNED_EVENT, _UNCACHED_EVENT, _LOOK = _claim_statements()


def claim(
    session: Session | Connection,
    placement_id: int,
    token: str,
    now: datetime,
    lease_seconds: float,
    addresses_since: datetime | None = None,
) -> Claim | None:
    """Take the placement if it is due and nobody holds an unexpired lease on it; None otherwise. A first claim also
    reads the address cache's answer for the mailbox if resolved since ``addresses_since`` (a round trip saved)."""
    expires = now + timedelta(seconds=lease_seconds)
    take = {"pid": placement_id, "now": now, "token": token, "expires": expires, "primary": None}
    if addresses_since is not None:
        return _claim_and_pin(session, placement_id, token, take, addresses_since)
    row: Any = run(session, _TAKE, take).first()
    if row is None:
        return None
    # Read after the claim: a write accepted meanwhile only makes the state converged to newer.
    params: dict[str, Any] = {"event_pk": row.event_pk, "pid": placement_id}
    if row.resolved is not None:
        statement, params["resolved"] = _PINNED_EVENT, row.resolved
    else:
        statement = _UNCACHED_EVENT
    event: Any = run(session, statement, params).one()
    return _claim(token, placement_id, row, event, row.resolved, bool(event.siblings), None)


def _claim_and_pin(
    session: Session | Connection, placement_id: int, token: str, take: dict[str, Any], since: datetime
) -> Claim | None:
    """A claim that pins the mailbox in the same transaction when the address cache knows it (a first claim's own
    transaction saved): the event is locked and read first, so no write is accepted before this commits."""
    look: Any = run(session, _LOOK, {"pid": placement_id, "since": since}).first()
    if look is None:
        return None
    pinning = look.resolved is None and look.primary is not None
    row: Any = run(session, _TAKE, take | {"primary": look.primary if pinning else None}).first()
    if row is None:
        return None
    siblings = bool(look.siblings)
    if pinning:
        # As ``pin_address``: the earlier pins of this mailbox locked, so a sibling's claim under way finishes first.
        params = {"of_event": row.event_pk, "primary": look.primary, "pid": placement_id}
        siblings = bool(run(session, _EARLIER_PINS, params).all())
    return _claim(token, placement_id, row, look, row.resolved, siblings, look.primary)


def _claim(
    token: str, placement_id: int, row: Any, event: Any, resolved: str | None, siblings: bool, cached: str | None
) -> Claim:
    return Claim(
        token=token,
        placement_id=placement_id,
        tenant_id=row.tenant_id,
        event_pk=row.event_pk,
        mailbox=row.mailbox,
        target=event.version,
        item_id=row.item_id,
        attempts=row.attempts,
        first_tried_at=row.first_tried_at,
        inflight_until=row.inflight_until,
        kind=event.kind,
        event_id=event.event_id,
        desired=dict(event.desired) if row.mailbox in event.present else None,
        correlation_id=event.correlation_id,
        resolved=resolved,
        siblings=siblings,
        state=dict(event.desired),
        present=tuple(event.present),
        cached_primary=cached,
    )


def _pin_statements() -> tuple[Any, Any, Any]:
    """``pin_address``'s statements, built once (as the claim's)."""
    event_pk: Any = bindparam("of_event")
    primary: Any = bindparam("primary")
    pid: Any = bindparam("pid")
    lock_event = select(Event.id).where(col(Event.id) == event_pk).with_for_update()
    earlier = (
        select(Placement.id)
        .where(col(Placement.event_pk) == event_pk, col(Placement.resolved) == primary, col(Placement.id) != pid)
        .order_by(col(Placement.id))
        .with_for_update()
    )
    pin = (
        update(Placement)
        .where(col(Placement.id) == pid, col(Placement.lease_token) == bindparam("token"))
        .values(resolved=func.coalesce(Placement.resolved, primary))
        .returning(col(Placement.resolved))
    )
    return lock_event, earlier, pin


_LOCK_EVENT, _EARLIER_PINS, _PIN = _pin_statements()


def pin_address(session: Session | Connection, claim: Claim, primary: str) -> tuple[str, bool] | None:
    """Record the mailbox this placement converges, once and for good; returns it and whether any sibling had pinned
    it before (None if the lease was lost).

    The event's row, then every committed sibling's, are locked first (the event first, as accepting a write locks
    it): a sibling's claim under way finishes before this commits, and one starting after it sees this placement.
    So pins of one mailbox are taken one after the other, and of two siblings the later sees the earlier: one that
    found none needs no look at its siblings (``siblings``), as any sibling pinning later looks at it.
    """
    run(session, _LOCK_EVENT, {"of_event": claim.event_pk})
    params = {"of_event": claim.event_pk, "primary": primary, "pid": claim.placement_id}
    earlier = run(session, _EARLIER_PINS, params).all()
    # No parameter named after a column in an UPDATE's (it would be SET).
    row = run(session, _PIN, {"primary": primary, "pid": claim.placement_id, "token": claim.token}).first()
    if row is None:
        return None
    return row[0], bool(earlier) or row[0] != primary


@dataclass(frozen=True)
class Sibling:
    id: int
    mailbox: str
    leased: bool  # claimed now, or by a worker that vanished and whose lease has not been taken over yet
    inflight_until: datetime | None


def siblings(session: Session | Connection, claim: Claim, primary: str) -> list[Sibling]:
    """The event's other placements converging the same mailbox; read after this claim's lease was committed."""
    rows: Any = run(
        session,
        select(Placement.id, Placement.mailbox, Placement.lease_token, Placement.inflight_until).where(
            col(Placement.event_pk) == claim.event_pk,
            col(Placement.resolved) == primary,
            col(Placement.id) != claim.placement_id,
        ),
    ).all()
    return [Sibling(pid or 0, mailbox, token is not None, until) for pid, mailbox, token, until in rows]


def pinned(session: Session | Connection, event_pk: int, mailboxes: list[str]) -> dict[str, str]:
    """The mailbox each of these addresses' placements converges, where a claim has resolved it."""
    if not mailboxes:
        return {}
    rows: Any = run(
        session,
        select(Placement.mailbox, Placement.resolved).where(
            col(Placement.event_pk) == event_pk,
            col(Placement.mailbox).in_(mailboxes),
            col(Placement.resolved).is_not(None),
        ),
    ).all()
    return {mailbox: resolved for mailbox, resolved in rows if resolved is not None}


def renew(session: Session, tokens: Iterable[str], now: datetime, lease_seconds: float) -> set[str]:
    """Extend the unexpired leases among ``tokens``; returns those that are still held."""
    tokens = list(tokens)
    if not tokens:
        return set()
    rows = run(
        session,
        update(Placement)
        .where(col(Placement.lease_token).in_(tokens), col(Placement.lease_expires_at) > now)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(col(Placement.lease_token)),
    ).all()
    return {r[0] for r in rows}


@dataclass(frozen=True)
class Outcome:
    """What one claim ends with. ``code`` None: not final, try again at ``due_at``."""

    code: str | None
    message: str | None = None
    item_id: str | None = None
    due_at: datetime | None = None  # the next run: a retry, or a check for a late-landing write
    inflight_until: datetime | None = None
    # The claim stepped aside for a sibling converging the same mailbox: nothing was tried, so no attempt counts.
    aside: bool = False


@dataclass(frozen=True)
class Recorded:
    jobs: frozenset[str]  # jobs that had results finished now, to be closed after the commit
    again: bool  # a newer write was accepted meanwhile: run again at once
    finished: int = 0  # results made final now


@functools.cache
def _release_statements(final: bool, aside: bool) -> tuple[Any, Any]:
    """The two statements recording an outcome of this kind, built once with bind parameters (as the claim's). No
    parameter is named after a column: an UPDATE takes such a parameter as a value to SET."""
    now = bindparam("now", type_=UTCDateTime())
    target = bindparam("target", type_=Integer())
    values: dict[str, Any] = {
        "lease_token": None,
        "lease_expires_at": None,
        "inflight_until": bindparam("inflight", type_=UTCDateTime()),
        # A write accepted meanwhile is due now, whatever this claim planned.
        "due_at": case((col(Placement.target_version) > target, now), else_=bindparam("due", type_=UTCDateTime())),
        "updated_at": now,
    }
    if aside:
        values["attempts"] = Placement.attempts - 1
    if final:
        values |= {
            "done_version": case((col(Placement.done_version) < target, target), else_=Placement.done_version),
            "last_code": bindparam("code"),
            "item_id": bindparam("written_item"),
            "first_tried_at": None,
            "attempts": 0,
        }
    placement = (
        update(Placement)
        .where(col(Placement.id) == bindparam("pid"), col(Placement.lease_token) == bindparam("token"))
        .values(**values)
        .returning(col(Placement.target_version))
    )
    results: dict[str, Any] = {"message": bindparam("message"), "updated_at": now}
    if not aside:
        results["attempts"] = JobResult.attempts + 1
    if final:
        results["error_code"] = bindparam("code")
    result = (
        update(JobResult)
        .where(
            col(JobResult.event_pk) == bindparam("of_event"),
            col(JobResult.mailbox) == bindparam("of_mailbox"),
            col(JobResult.version) <= target,
            col(JobResult.error_code) == PENDING,
        )
        .values(**results)
        .returning(col(JobResult.job_id))
    )
    return placement, result


def release(session: Session | Connection, claim: Claim, outcome: Outcome, now: datetime) -> Recorded | None:
    """Record the outcome and end the claim, if the lease is still this claim's; None if it was lost."""
    final = outcome.code is not None
    placement, result = _release_statements(final, outcome.aside)
    row = run(
        session,
        placement,
        {
            "pid": claim.placement_id,
            "token": claim.token,
            "target": claim.target,
            "now": now,
            "inflight": outcome.inflight_until,
            "due": outcome.due_at,
            "code": outcome.code,
            "written_item": outcome.item_id,
        },
    ).first()
    if row is None:
        return None
    params = {"of_event": claim.event_pk, "of_mailbox": claim.mailbox, "target": claim.target, "now": now}
    jobs = run(session, result, params | {"message": outcome.message, "code": outcome.code}).all()
    return Recorded(
        jobs=frozenset(j[0] for j in jobs) if final else frozenset(),
        again=row[0] > claim.target,
        finished=len(jobs) if final else 0,
    )
