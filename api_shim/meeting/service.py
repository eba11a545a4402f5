"""Meetings: accepting creates, patches and cancellations as desired state, and reading meetings live."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from sqlmodel import Session, col, select

from api_shim.errors import ApiError
from api_shim.fields import format_time
from api_shim.meeting.schemas import AttendeeView, MeetingCreate, MeetingPatch, MeetingView
from downsync.auth import Principal
from downsync.core.aliases import Resolver, bound, normal
from downsync.core.converge import TenantUnusable
from downsync.core.errors import MAILBOX_NOT_FOUND, GatewayError
from downsync.core.model import MEETING, Invitee, Meeting, Tag
from downsync.core.model import AttendeeView as Attendee
from downsync.jobs import Accepted, Listed, accept_write
from downsync.models import Event, Job, Placement, Tenant
from downsync.settings import Settings
from downsync.tenants import gateway_for

KIND = MEETING
# The contract's location for an online meeting, made one where the tenant's backend can (Microsoft Graph).
TEAMS = "ms teams"


def not_found(organizer: str) -> ApiError:
    return ApiError(404, "MeetingNotFound", "no such meeting for this organizer", extra={"email": organizer})


def _fingerprint(body: MeetingCreate) -> str:
    """What makes two creates the same meeting: every field but the correlation id; addresses and the order of
    attendees do not count."""
    data = body.model_dump(mode="json", exclude={"salesforceCorrelationId"})
    data["organizerEmail"] = data["organizerEmail"].lower()
    data["attendees"] = sorted((a["email"].lower(), a["isRequired"]) for a in data["attendees"])
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _desired(
    organizer: str,
    subject: str,
    body: str,
    location: str | None,
    start: Any,
    end: Any,
    attendees: list[dict[str, Any]],
    created_from: str,
) -> dict[str, Any]:
    # Each attendee once; the organizer is not their own attendee.
    people = [a for a in dedupe_attendees(attendees) if a["email"].lower() != organizer.lower()]
    meeting = Meeting(
        subject=subject,
        body=body,
        location=location,
        start=start,
        end=end,
        attendees=tuple(Invitee(a["email"], a["required"]) for a in people),
        online=(location or "").strip().lower() == TEAMS,
    )
    return {**meeting.to_json(), "organizerEmail": organizer, "createdFrom": created_from}


def dedupe_attendees(attendees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for attendee in attendees:
        if attendee["email"].lower() not in seen:
            seen.add(attendee["email"].lower())
            out.append(attendee)
    return out


def _exists(session: Session, event: Event) -> bool:
    """Whether the meeting is taken: its create is pending, or it is in the organizer's calendar. A create that
    failed for good leaves nothing behind, so its id is free again."""
    if event.version == 0 or not event.present:
        return False
    organizer = session.exec(
        select(Placement).where(Placement.event_pk == event.id, Placement.mailbox == event.present[0])
    ).first()
    if organizer is None:
        return False
    return organizer.done_version < organizer.target_version or organizer.item_id is not None


class RepeatedCreate(Exception):
    """The same meeting was created before under this id: answer with that create's job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def create(session: Session, principal: Principal, body: MeetingCreate, correlation_id: str) -> Accepted:
    fingerprint = _fingerprint(body)
    desired = _desired(
        body.organizerEmail,
        body.subject,
        body.body,
        body.location,
        body.startTime,
        body.endTime,
        [{"email": a.email, "required": a.isRequired} for a in body.attendees],
        fingerprint,
    )

    def vacant(event: Event) -> None:
        if not _exists(session, event):
            return
        if event.desired.get("createdFrom") != fingerprint:
            raise ApiError(
                409,
                "MeetingAlreadyExists",
                f"a different meeting with id {body.id} exists",
                extra={"email": body.organizerEmail},
            )
        query = select(Job.id).where(Job.event_pk == event.id, Job.operation == "create")
        raise RepeatedCreate(session.exec(query.order_by(col(Job.version).desc())).first() or "")

    organizer = Listed(body.organizerEmail)
    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="create",
        event_id=body.id,
        desired=desired,
        present=[organizer.mailbox],
        listed=[organizer],
        correlation_id=correlation_id,
        precondition=vacant,
    )


def _owned_by(session: Session, organizer: str) -> Any:
    def check(event: Event) -> None:
        if not _exists(session, event) or event.desired.get("organizerEmail", "").lower() != organizer.lower():
            raise not_found(organizer)

    return check


def patch(session: Session, principal: Principal, body: MeetingPatch, correlation_id: str) -> Accepted:
    given = body.model_fields_set

    def merged(event: Event) -> dict[str, Any]:
        # Built from the locked row, so two PATCHes at once each apply on top of the other.
        current = Meeting.from_json(event.desired)
        start = body.startTime if "startTime" in given and body.startTime else current.start
        end = body.endTime if "endTime" in given and body.endTime else current.end
        if end <= start:
            raise ApiError(
                422,
                "ErrorInvalidRequest",
                "endTime must be after startTime",
                [{"field": "endTime", "problem": "must be after startTime"}],
            )
        attendees = (
            [{"email": a.email, "required": a.isRequired} for a in body.attendees]
            if "attendees" in given and body.attendees is not None
            else [{"email": a.email, "required": a.required} for a in current.attendees]
        )
        return _desired(
            event.desired["organizerEmail"],
            body.subject if "subject" in given and body.subject is not None else current.subject,
            body.body if "body" in given and body.body is not None else current.body,
            body.location if "location" in given else current.location,
            start,
            end,
            attendees,
            event.desired.get("createdFrom", ""),
        )

    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="update",
        event_id=body.id,
        desired=merged,
        present=[body.organizerEmail.lower()],
        listed=[Listed(body.organizerEmail)],
        correlation_id=correlation_id,
        precondition=_owned_by(session, body.organizerEmail),
    )


def delete(
    session: Session, principal: Principal, event_id: str, organizer_email: str, correlation_id: str
) -> Accepted:
    return accept_write(
        session,
        tenant_id=principal.tenant_id,
        kind=KIND,
        operation="delete",
        event_id=event_id,
        desired=None,
        present=[],
        listed=[Listed(organizer_email)],
        correlation_id=correlation_id,
        precondition=_owned_by(session, organizer_email),
    )


def read(session: Session, principal: Principal, event_id: str, organizer: str, settings: Settings) -> MeetingView:
    tenant = session.get(Tenant, principal.tenant_id)
    assert tenant is not None
    try:
        gateway = gateway_for(tenant, settings)
    except TenantUnusable as exc:
        raise ApiError(500, "ErrorInternalServerError", str(exc)) from exc
    tag = Tag(tenant.tag_id, KIND, event_id)
    event = session.exec(
        select(Event).where(Event.tenant_id == tenant.id, Event.kind == KIND, Event.event_id == event_id)
    ).first()
    written = [a["email"] for a in (event.desired.get("attendees") or [])] if event is not None else []
    resolver = Resolver(bound(session), tenant.id or 0, gateway, settings.address_cache_seconds)
    session.close()
    try:
        view = gateway.read_meeting(organizer, tag)
    except GatewayError as exc:
        if exc.code == MAILBOX_NOT_FOUND:
            raise not_found(organizer) from exc
        raise ApiError(
            502, exc.code, f"Exchange did not answer the read: {exc.message}", headers={"Retry-After": "5"}
        ) from exc
    if view is None:
        raise not_found(organizer)
    return MeetingView(
        id=event_id,
        organizerEmail=organizer,
        body=view.body,
        subject=view.subject,
        location=view.location,
        startTime=format_time(view.start),
        endTime=format_time(view.end),
        attendees=[
            AttendeeView(email=a.email, isRequired="true" if a.required else "false", response=a.response)
            for a in as_written(view.attendees, written, resolver)
        ],
    )


def as_written(attendees: tuple[Attendee, ...], written: list[str], resolver: Resolver) -> list[Attendee]:
    """The organizer's attendees, in Exchange's order, under the addresses the meeting was written with: Exchange
    keeps each person once, under their primary address, however many of their addresses were listed; each listed
    address gets that person's answer. Attendees the accepted state does not list (added in Outlook) stay as
    Exchange has them."""
    if not written or not attendees:
        return list(attendees)
    primaries = resolver.lookup([*written, *(a.email for a in attendees)], strict=False, deadline=time.monotonic() + 5)
    names: dict[str, list[str]] = {}
    for email in written:
        names.setdefault(primaries[normal(email)], []).append(email)
    out: list[Attendee] = []
    for attendee in attendees:
        listed = names.pop(primaries[normal(attendee.email)], None)
        if listed is None or [normal(e) for e in listed] == [normal(attendee.email)]:
            out.append(attendee)
        else:
            out.extend(replace(attendee, email=email) for email in listed)
    return out
