"""Converging one placement (an event in one mailbox) to the event's latest accepted state.

Claim the placement under a lease, search the mailbox for the event's tagged items, let ``plan.decide``
say what is needed, do it (checking the lease before every write), and record the outcome only if the
lease is still ours. Failures are sorted here: the store's are retried (nothing recorded; the lease
runs out and the work is due again), Exchange's transient ones retried after a back-off never shorter
than the server asked, within a time budget that throttling alone never exhausts, permanent ones
recorded, and anything else is a bug, reported once and recorded as ErrorInternalServerError.

A placement converges the mailbox its address names (``Placement.resolved``, its primary address), so two
addresses of one mailbox in one event are one mailbox: converged by one placement at a time (the other steps
aside), to the event's state if any of the event's present addresses names it, and a meeting invites each
person once however many of their addresses are listed.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine, exists
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from downsync import metrics, observability
from downsync.core import plan
from downsync.core.aliases import Resolver, normal
from downsync.core.claims import Claim, Outcome, claim, pin_address, pinned, release, siblings
from downsync.core.errors import Conflict, PermanentError, TransientError, UnclearOutcome
from downsync.core.gateway import CalendarGateway
from downsync.core.leases import LeaseKeeper, LeaseLost
from downsync.core.model import MEETING, Appointment, Invitee, Meeting, Tag
from downsync.core.throttle import Deferred, GatedGateway, MailboxGate
from downsync.db import session_scope, transaction
from downsync.jobs import close_jobs
from downsync.models import NO_ERROR, Event, utcnow
from downsync.settings import Settings

log = logging.getLogger(__name__)
INTERNAL = "ErrorInternalServerError"
MAX_ROUNDS = 6  # re-reads after a stale change key before the try counts as failed


@dataclass(frozen=True)
class TenantContext:
    name: str
    tag_id: str
    gateway: CalendarGateway


class TenantUnusable(Exception):
    """The tenant's settings cannot be used (e.g. its secrets no longer decrypt): final for its work, not a bug."""


@dataclass(frozen=True)
class Step:
    status: str  # done, retry (due again later), idle (nothing due or someone else's), lost, store-error
    code: str | None = None


def backoff(attempt: int, error: TransientError, settings: Settings) -> float:
    """Capped exponential back-off with jitter, never shorter than the server asked for."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, error.back_off or 0.0)


class Converger:
    def __init__(
        self,
        engine: Engine,
        tenants: Callable[[int], TenantContext],
        settings: Settings,
        leases: LeaseKeeper,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        gate: MailboxGate | None = None,
        announce: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.announce = announce
        self.engine = engine
        self.tenants = tenants
        self.settings = settings
        self.leases = leases
        self.now = now
        self.monotonic = monotonic
        # One per process: a mailbox the server asked to wait for waits for every placement converged here.
        self.gate = gate or MailboxGate(monotonic=monotonic)

    def run(self, placement_id: int) -> Step:
        """Converge the placement; runs again at once while writes accepted meanwhile are due."""
        for _ in range(10):
            step, again = self._once(placement_id)
            if not again:
                return step
        return step

    def _once(self, placement_id: int) -> tuple[Step, bool]:
        token = uuid.uuid4().hex
        sent_at = self.monotonic()
        try:
            with transaction(self.engine) as session:
                now = self.now()
                fresh = now - timedelta(seconds=self.settings.address_cache_seconds)
                claimed = claim(session, placement_id, token, now, self.settings.lease_seconds, addresses_since=fresh)
        except SQLAlchemyError as exc:
            log.warning("placement %s: the store did not answer the claim: %s", placement_id, exc)
            return Step("store-error"), False
        if claimed is None:
            return Step("idle"), False
        self.leases.hold(token, sent_at)
        try:
            outcome = self._converge(claimed)
            if outcome is None:
                metrics.LEASES_LOST.labels("expired").inc()
                return Step("lost"), False
            return self._record(claimed, outcome)
        finally:
            self.leases.release(token)

    def _record(self, claimed: Claim, outcome: Outcome) -> tuple[Step, bool]:
        for pause in (0.2, 0.5, 1.0, None):
            try:
                self.leases.check(claimed.token)
                with transaction(self.engine) as session:
                    recorded = release(session, claimed, outcome, self.now())
                break
            except LeaseLost:
                metrics.LEASES_LOST.labels("expired").inc()
                return Step("lost"), False
            except SQLAlchemyError as exc:
                # A store blip: the outcome is tried again while the lease holds; after that the claim simply
                # expires and the next one converges again, which finds what this one wrote.
                log.warning("placement %s: the store did not take the outcome: %s", claimed.placement_id, exc)
                if pause is None:
                    return Step("store-error"), False
                time.sleep(pause)
        if recorded is None:
            metrics.LEASES_LOST.labels("taken").inc()
            return Step("lost"), False
        if recorded.finished:
            metrics.RESULTS.labels(claimed.kind, outcome.code or "Pending").inc(recorded.finished)
        if recorded.jobs:
            try:
                with transaction(self.engine) as connection:
                    closed = close_jobs(connection, recorded.jobs)
                if closed and self.announce is not None:
                    self.announce(closed)
            except SQLAlchemyError as exc:  # the dispatcher closes them later
                log.warning("placement %s: jobs left to close later: %s", claimed.placement_id, exc)
        if outcome.code is None:
            return Step("retry"), recorded.again
        return Step("done", outcome.code), recorded.again

    def _converge(self, claimed: Claim) -> Outcome | None:
        settle = timedelta(seconds=self.settings.settle_seconds)
        unsettled = claimed.inflight_until + settle if claimed.inflight_until else None
        try:
            observability.correlation_id.set(claimed.correlation_id)
            tenant = self.tenants(claimed.tenant_id)
            observability.tenant_name.set(tenant.name)
            return self._apply(claimed, tenant, unsettled)
        except LeaseLost:
            return None
        except SQLAlchemyError:
            raise
        except UnclearOutcome as error:
            # The write may still land: no second create before it no longer can, and a check after that.
            return self._retry(claimed, error, inflight_until=self.now())
        except TransientError as error:
            return self._retry(claimed, error, inflight_until=claimed.inflight_until)
        except PermanentError as error:
            log.info("mailbox %s: %s", claimed.mailbox, error.code)
            return Outcome(error.code, error.message)
        except TenantUnusable as error:
            log.error("placement %s: %s", claimed.placement_id, error)
            return Outcome(INTERNAL, str(error)[:500])
        except Exception as exc:  # a bug: reported once (the error log line goes to Sentry), never retried
            metrics.BUG_REPORTS.labels("converge").inc()
            log.exception("placement %s: unexpected failure converging %s", claimed.placement_id, claimed.mailbox)
            return Outcome(INTERNAL, f"{type(exc).__name__}: {exc}"[:500])

    def _retry(self, claimed: Claim, error: TransientError, inflight_until: datetime | None) -> Outcome:
        now = self.now()
        budget = timedelta(seconds=self.settings.retry_budget_seconds)
        if not error.throttled and now - claimed.first_tried_at >= budget:
            log.info("mailbox %s: %s after the retry budget", claimed.mailbox, error.code)
            return Outcome(error.code, error.message)
        if isinstance(error, Deferred):  # nothing was sent: due again once the mailbox may be called
            delay = (error.back_off or 0.0) + random.uniform(0.0, 0.2)
        else:
            delay = backoff(claimed.attempts, error, self.settings)
        reason = "throttled" if error.throttled else "unclear" if isinstance(error, UnclearOutcome) else "transient"
        metrics.RETRIES.labels(reason).inc()
        log.info("mailbox %s: %s, trying again in %.1f s", claimed.mailbox, error.code, delay)
        return Outcome(None, error.message, due_at=now + timedelta(seconds=delay), inflight_until=inflight_until)

    def _adopt_legacy(self, claimed: Claim) -> bool:
        """Items tagged before tags named the tenant are this tenant's when no other tenant has this event id."""
        with session_scope(self.engine) as session:
            other = session.exec(
                select(
                    exists().where(
                        col(Event.kind) == claimed.kind,
                        col(Event.event_id) == claimed.event_id,
                        col(Event.tenant_id) != claimed.tenant_id,
                    )
                )
            ).one()
        return not other

    def _mailbox(self, claimed: Claim, resolver: Resolver) -> tuple[str, bool]:
        """The mailbox the placement converges, and whether it may share it with a sibling. Pinned by the first
        claim that resolved it and never changed: another mailbox later would leave the first one's item to
        nobody, or remove one a sibling wrote."""
        if claimed.resolved is not None:
            return claimed.resolved, claimed.siblings
        primary = claimed.cached_primary or resolver.lookup([claimed.mailbox])[normal(claimed.mailbox)]
        with transaction(self.engine) as session:
            pinned_now = pin_address(session, claimed, primary)
        if pinned_now is None:
            raise LeaseLost(claimed.token)
        return pinned_now

    def _turn(self, claimed: Claim, mailbox: str) -> Outcome | datetime | None:
        """Whether this claim may converge a mailbox its siblings share: an outcome stepping aside while one of them
        holds (or held, and vanished with) a lease; else when a write of theirs may last have been sent, if ever."""
        with transaction(self.engine) as session:
            others = siblings(session, claimed, mailbox)
        now = self.now()
        busy = [s for s in others if s.leased or (s.inflight_until is not None and s.inflight_until > now)]
        if busy:
            # Of two siblings stepping aside for each other, the older placement comes back first.
            later = all(s.id > claimed.placement_id for s in busy)
            delay = (1.0 if later else 2.0) + random.uniform(0.0, 0.5)
            metrics.RETRIES.labels("alias").inc()
            log.info("mailbox %s: %s is being written for this event; again in %.1f s", mailbox, busy[0].mailbox, delay)
            return Outcome(
                None,
                f"waiting: {busy[0].mailbox} names the same mailbox and is being written",
                due_at=now + timedelta(seconds=delay),
                inflight_until=claimed.inflight_until,
                aside=True,
            )
        return max((s.inflight_until for s in others if s.inflight_until is not None), default=None)

    def _held_by_alias(self, claimed: Claim, mailbox: str, resolver: Resolver) -> bool:
        """Whether another address that must hold the event names this mailbox: then it keeps the event."""
        others = [m for m in claimed.present if m != claimed.mailbox]
        if not others:
            return False
        with transaction(self.engine) as session:
            known = pinned(session, claimed.event_pk, others)
        rest = [m for m in others if m not in known]
        if rest:
            known |= resolver.lookup(rest)
        return mailbox in known.values()

    def _apply(self, claimed: Claim, tenant: TenantContext, unsettled: datetime | None) -> Outcome:
        gateway = GatedGateway(tenant.gateway, self.gate)
        resolver = Resolver(self.engine, claimed.tenant_id, gateway, self.settings.address_cache_seconds, now=self.now)
        mailbox, shared = self._mailbox(claimed, resolver)
        if shared:
            turn = self._turn(claimed, mailbox)
            if isinstance(turn, Outcome):
                return turn
            if turn is not None and turn + timedelta(seconds=self.settings.settle_seconds) > self.now():
                # A sibling's write may still land here: no create before it no longer can, as for one's own.
                theirs = turn + timedelta(seconds=self.settings.settle_seconds)
                unsettled = max(unsettled, theirs) if unsettled is not None else theirs
        wanted = claimed.desired
        if wanted is None and claimed.state and self._held_by_alias(claimed, mailbox, resolver):
            wanted = claimed.state
        tag = Tag(tenant.tag_id, claimed.kind, claimed.event_id)
        is_meeting = claimed.kind == MEETING
        desired: Appointment | Meeting | None = None
        if wanted is not None:
            desired = Meeting.from_json(wanted) if is_meeting else Appointment.from_json(wanted)
        fingerprint = desired.fingerprint if desired is not None else None
        adopt: bool | None = None
        note: str | None = None
        # One turn at the mailbox for the look and the write (a round trip to Redis each way), not one per call.
        with gateway.turn(mailbox):
            for _ in range(MAX_ROUNDS):
                found = gateway.find(mailbox, tag)
                if adopt is None and any(f.tenant is None and f.ref.id != claimed.item_id for f in found):
                    adopt = self._adopt_legacy(claimed)
                mine = plan.ours(found, tag.tenant, claimed.item_id, bool(adopt))
                decision = plan.decide(
                    meeting=is_meeting,
                    fingerprint=fingerprint,
                    found=mine,
                    known_id=claimed.item_id,
                    unsettled_until=unsettled,
                    now=self.now(),
                )
                if decision.remove:
                    self.leases.check(claimed.token)
                    gateway.remove(mailbox, decision.remove)
                if decision.cancel:
                    self.leases.check(claimed.token)
                    gateway.cancel_meeting(mailbox, decision.cancel)
                if decision.action == plan.WAIT:
                    assert decision.wait_until is not None
                    until = decision.wait_until
                    log.info("mailbox %s: an earlier create may still land; waiting until %s", mailbox, until)
                    return Outcome(
                        None,
                        "an earlier write may still reach Exchange; "
                        f"not creating again before {decision.wait_until:%H:%M:%S}Z",
                        due_at=decision.wait_until,
                        inflight_until=claimed.inflight_until,
                    )
                try:
                    item_id, note = self._write(claimed, mailbox, gateway, resolver, tag, desired, decision)
                except Conflict as conflict:
                    log.info("mailbox %s: %s; reading again", mailbox, conflict.code)
                    continue
                break
            else:
                raise TransientError("ErrorIrresolvableConflict", "the item kept changing while it was being written")
        log.info("mailbox %s: %s %s (version %s)", mailbox, claimed.kind, decision.action, claimed.target)
        # After a write of an earlier try whose outcome was unclear, look once more when it can no longer land;
        # and once that time has passed, one last look a settle time later for a write slower than Exchange's norm.
        if unsettled is not None and self.now() < unsettled:
            return Outcome(NO_ERROR, note, item_id=item_id, due_at=unsettled, inflight_until=claimed.inflight_until)
        last_look = self.now() + timedelta(seconds=self.settings.settle_seconds) if unsettled is not None else None
        return Outcome(NO_ERROR, note, item_id=item_id, due_at=last_look)

    def _write(
        self,
        claimed: Claim,
        mailbox: str,
        gateway: CalendarGateway,
        resolver: Resolver,
        tag: Tag,
        desired: Appointment | Meeting | None,
        decision: plan.Decision,
    ) -> tuple[str | None, str | None]:
        """Carry out the decision's write; returns the item the mailbox now holds and a note for the result."""
        check = self.leases.check
        if decision.action == plan.NOTHING:
            return (decision.target.ref.id if decision.target else None), None
        key = f"{tag.tenant}.{claimed.placement_id}.{claimed.target}"
        if isinstance(desired, Meeting):
            ref = decision.target.ref if decision.target else None
            if decision.action == plan.CREATE:
                check(claimed.token)
                ref = gateway.create_meeting_draft(mailbox, tag, desired, key)
            assert ref is not None
            invited = once_each(desired, mailbox, resolver)
            check(claimed.token)
            sent, note = gateway.send_meeting(mailbox, ref, tag, invited)
            return sent.id, note
        assert isinstance(desired, Appointment)
        check(claimed.token)
        if decision.action == plan.CREATE:
            return gateway.create_appointment(mailbox, tag, desired, key).id, None
        assert decision.target is not None
        return gateway.update_appointment(mailbox, decision.target.ref, tag, desired).id, None


def once_each(meeting: Meeting, organizer: str, resolver: Resolver) -> Meeting:
    """The meeting with each person invited once: attendees whose addresses name one mailbox become the first of
    them (required if any was), and the organizer's own mailbox is nobody's attendee. It keeps the accepted
    state's fingerprint, so an unchanged meeting still reads as unchanged however its addresses resolve."""
    if not meeting.attendees:
        return meeting
    primaries = resolver.lookup(a.email for a in meeting.attendees)
    people: dict[str, Invitee] = {}
    for attendee in meeting.attendees:
        primary = primaries[normal(attendee.email)]
        if primary == organizer:
            continue
        first = people.get(primary)
        people[primary] = Invitee(
            first.email if first else attendee.email, attendee.required or (first is not None and first.required)
        )
    if len(people) == len(meeting.attendees):
        return meeting
    return replace(meeting, attendees=tuple(people.values()), written_as=meeting.fingerprint)
