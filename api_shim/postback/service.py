"""Turning a postback into desired state: which mailboxes hold the appointment, which lose it, in what order."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session

from api_shim.postback.schemas import EventState, PostbackCreate, PostbackDelete, PostbackUpdate
from downsync.auth import Principal
from downsync.core.model import POSTBACK, Appointment
from downsync.jobs import Accepted, Listed, accept_write

KIND = POSTBACK


def dedupe(emails: Iterable[str]) -> list[Listed]:
    """Each mailbox once, in first-seen order, as the caller first wrote it."""
    seen: set[str] = set()
    out = []
    for email in emails:
        entry = Listed(email)
        if entry.mailbox not in seen:
            seen.add(entry.mailbox)
            out.append(entry)
    return out


def _mailboxes(state: EventState) -> list[Listed]:
    return dedupe([state.organizerEmail, *(a.email for a in state.attendees)])


def _desired(state: EventState) -> dict:
    return Appointment(
        subject=state.subject, body=state.body, location=state.location, start=state.startTime, end=state.endTime
    ).to_json()


def create(session: Session, principal: Principal, body: PostbackCreate, correlation_id: str) -> Accepted:
    listed = _mailboxes(body)
    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="create",
        event_id=body.id,
        desired=_desired(body),
        present=[e.mailbox for e in listed],
        listed=listed,
        correlation_id=correlation_id,
    )


def update(session: Session, principal: Principal, body: PostbackUpdate, correlation_id: str) -> Accepted:
    kept = _mailboxes(body.new)
    before = body.original
    previous = dedupe(
        [e for e in [before.organizerEmail if before else None] if e]
        + [a.email for a in (before.attendees if before else [])]
    )
    staying = {e.mailbox for e in kept}
    removed = [e for e in previous if e.mailbox not in staying]
    assert body.event_id is not None
    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="update",
        event_id=body.event_id,
        desired=_desired(body.new),
        present=[e.mailbox for e in kept],
        listed=kept + removed,
        correlation_id=correlation_id,
    )


def delete(session: Session, principal: Principal, body: PostbackDelete, correlation_id: str) -> Accepted:
    listed = dedupe([body.organizerEmail, *body.attendees])
    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="delete",
        event_id=body.id,
        desired=None,
        present=[],
        listed=listed,
        correlation_id=correlation_id,
    )
