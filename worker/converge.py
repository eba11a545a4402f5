"""Converging one placement (an event in one mailbox) to the event's latest accepted state.

Under the pair's lock: read the desired state, make Exchange match it, record the outcome on every
result that version covers. Transient Exchange failures come back as a countdown for the task to
retry with; permanent ones, or the last allowed try, are final codes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from sqlmodel import select

from downsync import observability
from downsync.db import session_scope
from downsync.exchange import appointments, meetings
from downsync.exchange.connection import Connection, account
from downsync.exchange.errors import TransientExchangeError, classify
from downsync.jobs import lock_event, record_attempt
from downsync.models import NO_ERROR, Event, Job, Placement, Tenant, utcnow
from downsync.settings import Settings, get_settings
from worker import locks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    status: str  # done, retry, busy, idle
    countdown: float | None = None
    code: str | None = None


@dataclass(frozen=True)
class Plan:
    placement_id: int
    event_pk: int
    target: int
    mailbox: str
    kind: str
    event_id: str
    desired: dict | None
    known_item_id: str | None
    attempts: int
    connection: Connection


UNCLEAR = ("ErrorTimeout", "ErrorConnectionFailed")


def backoff(attempt: int, error: TransientExchangeError, settings: Settings) -> float:
    """Capped exponential back-off with jitter, never shorter than the server asked for (up to the cap).

    After a call whose outcome is unknown (a timeout, a dropped connection) Exchange may still be writing:
    the next try waits at least one Exchange timeout, so its search sees what that call created.
    """
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if error.back_off:
        delay = max(delay, error.back_off)
    if error.code in UNCLEAR:
        delay = max(delay, settings.exchange_timeout_seconds)
    return min(delay, settings.retry_max_seconds)


def _plan(placement_id: int, settings: Settings) -> Plan | None:
    with session_scope() as session:
        placement = session.get(Placement, placement_id)
        if placement is None or placement.done_version >= placement.target_version:
            return None
        event = session.get(Event, placement.event_pk)
        tenant = session.get(Tenant, placement.tenant_id)
        assert event is not None and tenant is not None
        job = session.exec(select(Job).where(Job.event_pk == event.id, Job.version == placement.target_version)).first()
        observability.tenant_name.set(tenant.name)
        observability.correlation_id.set(job.correlation_id if job else "-")
        # Shows the sweep this placement's task is alive.
        placement.enqueued_at = utcnow()
        session.add(placement)
        return Plan(
            placement_id=placement_id,
            event_pk=placement.event_pk,
            target=placement.target_version,
            mailbox=placement.mailbox,
            kind=event.kind,
            event_id=event.event_id,
            desired=dict(event.desired) if placement.mailbox in event.present else None,
            known_item_id=placement.item_id,
            attempts=placement.attempts,
            connection=Connection.for_tenant(tenant, timeout=settings.exchange_timeout_seconds),
        )


def _apply(plan: Plan) -> str | None:
    """Make Exchange match the plan; returns the item id the mailbox now holds."""
    acct = account(plan.connection, plan.mailbox)
    if plan.kind == meetings.KIND:
        wanted = meetings.Meeting.from_json(plan.desired) if plan.desired is not None else None
        outcome = meetings.converge(acct, plan.event_id, wanted, plan.known_item_id)
    else:
        desired = appointments.Appointment.from_json(plan.desired) if plan.desired is not None else None
        outcome = appointments.converge(acct, plan.kind, plan.event_id, desired, plan.known_item_id)
    log.info("mailbox %s: %s %s (version %s)", plan.mailbox, plan.kind, outcome.action, plan.target)
    return outcome.item_id


def _record(plan: Plan, code: str | None, message: str | None, item_id: str | None = None) -> None:
    with session_scope() as session:
        lock_event(session, plan.event_pk)
        placement = session.exec(select(Placement).where(Placement.id == plan.placement_id).with_for_update()).one()
        if code == NO_ERROR:
            placement.item_id = item_id
        record_attempt(session, placement, plan.target, code, message)


def _unplannable(placement_id: int, message: str) -> None:
    """A placement that cannot even be planned (e.g. its tenant's password no longer decrypts) is final at once."""
    with session_scope() as session:
        placement = session.get(Placement, placement_id)
        if placement is None:
            return
        lock_event(session, placement.event_pk)
        record_attempt(session, placement, placement.target_version, "ErrorInternalServerError", message)


def converge_placement(placement_id: int, settings: Settings | None = None) -> Step:
    settings = settings or get_settings()
    with locks.held(f"placement:{placement_id}", settings.pair_lock_seconds) as ours:
        if not ours:
            return Step("busy", countdown=0.5 + random.random())
        try:
            plan = _plan(placement_id, settings)
        except Exception as exc:
            log.exception("placement %s cannot be planned", placement_id)
            _unplannable(placement_id, f"{type(exc).__name__}: {exc}"[:500])
            return Step("done", code="ErrorInternalServerError")
        if plan is None:
            return Step("idle")
        try:
            item_id = _apply(plan)
        except Exception as exc:
            error = classify(exc)
            if isinstance(error, TransientExchangeError) and plan.attempts + 1 < settings.retry_max_attempts:
                _record(plan, None, error.message)
                delay = backoff(plan.attempts + 1, error, settings)
                log.info("mailbox %s: %s, trying again in %.1f s", plan.mailbox, error.code, delay)
                return Step("retry", countdown=delay, code=error.code)
            _record(plan, error.code, error.message)
            return Step("done", code=error.code)
        _record(plan, NO_ERROR, None, item_id)
        return Step("done", code=NO_ERROR)
