"""Availability answers: Exchange's busy spans per attendee, filtered, clipped, merged; failures fail closed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session

from api_shim.availability.schemas import AttendeeQuery
from api_shim.errors import ApiError
from api_shim.fields import format_time
from downsync import metrics
from downsync.core.aliases import Resolver, bound
from downsync.core.converge import TenantUnusable
from downsync.core.model import Busy
from downsync.models import Tenant
from downsync.settings import Settings
from downsync.tenants import gateway_for


def merged(
    spans: Iterable[Busy], start: datetime, end: datetime, busy_types: set[str]
) -> list[tuple[datetime, datetime]]:
    """The unavailable spans inside [start, end): clipped, overlapping or touching ones merged, sorted."""
    clipped = sorted(
        (max(s.start, start), min(s.end, end))
        for s in spans
        if s.busy_type in busy_types and s.start < end and s.end > start
    )
    out: list[tuple[datetime, datetime]] = []
    for first, last in clipped:
        if out and first <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def answer(
    session: Session,
    tenant_id: int,
    entries: list[AttendeeQuery],
    start: datetime,
    end: datetime,
    on_error: str | None,
    deadline_seconds: float,
    settings: Settings,
) -> list[dict[str, object]]:
    deadline = time.monotonic() + deadline_seconds
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    try:
        gateway = gateway_for(tenant, settings)
    except TenantUnusable as exc:
        raise ApiError(500, "ErrorInternalServerError", str(exc)) from exc
    resolver = Resolver(bound(session), tenant_id, gateway, settings.address_cache_seconds)
    session.close()  # the lookup may take seconds; it needs no connection to the store but the resolver's own
    # Each mailbox is asked once, however often and under however many of its addresses it is listed; an address
    # the directory did not resolve in time (a third of the deadline at most) stands for itself.
    written = list(dict.fromkeys(e.email.lower() for e in entries))
    primaries = resolver.lookup(
        written, strict=False, deadline=time.monotonic() + max(0.0, deadline - time.monotonic()) / 3
    )
    unique = list(dict.fromkeys(primaries[a] for a in written))
    answers = gateway.free_busy(unique, start, end, deadline)
    late = sum(1 for a in answers.values() if a.code == "ErrorTimeout")
    if late:
        metrics.DEADLINE_MISSES.labels(tenant.backend).inc(late)
    busy_types = {t.strip() for t in tenant.busy_types.split(",") if t.strip()}
    fail_open = (on_error or tenant.availability_on_error) == "free"
    out: list[dict[str, object]] = []
    for entry in entries:
        found = answers[primaries[entry.email.lower()]]
        if found.code == "NoError":
            spans = merged(found.spans, start, end, busy_types)
        else:
            # Salesforce reads "no slots" as free: an attendee we could not look up is shown busy throughout.
            spans = [] if fail_open else [(start, end)]
        item: dict[str, object] = {"email": entry.email}
        if entry.serviceResourceId is not None:
            item["serviceResourceId"] = entry.serviceResourceId
        item["errorCode"] = found.code
        item["unavailableTimeslots"] = [{"timeMin": format_time(a), "timeMax": format_time(b)} for a, b in spans]
        out.append(item)
    return out
