"""The store: tenants and their tokens, events' desired state, per-mailbox placements, jobs and results.

Every row carries its tenant. An ``Event`` holds the latest accepted write for one Salesforce event
(its desired state); each ``Placement`` is that event in one mailbox, converging to the event's
version; each ``Job`` is one accepted call, with a ``JobResult`` per mailbox that callers poll.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

PENDING = "Pending"
NO_ERROR = "NoError"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_tag_id() -> str:
    return uuid.uuid4().hex


class Tenant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    # Written into every item's tag, so tenants sharing one Exchange organisation never touch each other's items.
    tag_id: str = Field(default_factory=new_tag_id, max_length=32, unique=True)
    # Which calendar backend (a package under downsync/backends) and its settings; secret settings are kept
    # apart, each encrypted with the settings' secret key, and never logged.
    backend: str = Field(default="ews", max_length=40)
    backend_options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    backend_secrets: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Availability: which free/busy states count as unavailable, and what a failed lookup reports.
    busy_types: str = Field(default="Busy,OOF,Tentative,WorkingElsewhere", max_length=100)
    availability_on_error: str = Field(default="closed", max_length=10)
    # Per-tenant rate limits in the ``limits`` notation ("100/second"); None takes the settings' defaults.
    rate_limit_writes: str | None = Field(default=None, max_length=100)
    rate_limit_availability: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ApiClient(SQLModel, table=True):
    """A registered API client of a tenant: OAuth 2.0 (refresh tokens) and HMAC-signed requests."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    client_id: str = Field(max_length=64, unique=True, index=True)
    # The secret is verified by its hash; HMAC signatures need the secret itself, kept encrypted with the
    # settings' secret key as the tenants' Exchange credentials are.
    secret_hash: str = Field(max_length=64)
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    scopes: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def scope_set(self) -> set[str]:
        return {s for s in self.scopes.split(",") if s}


class RefreshToken(SQLModel, table=True):
    """A refresh token, used once: each use returns the next of its family; a second use revokes the family."""

    id: int | None = Field(default=None, primary_key=True)
    client_pk: int = Field(foreign_key="apiclient.id", index=True)
    family: str = Field(max_length=32, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token: long-lived from ``downsync token create``, or an OAuth access token of a client."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    # OAuth access tokens: the client and refresh-token family that issued them, and when they stop working.
    client_pk: int | None = Field(default=None, foreign_key="apiclient.id", index=True)
    family: str | None = Field(default=None, max_length=32, index=True)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def scope_set(self) -> set[str]:
        return {s for s in self.scopes.split(",") if s}


class Event(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    kind: str = Field(max_length=20)
    event_id: str = Field(max_length=255)
    version: int = 0
    # The latest accepted state: subject, body, location, start, end, organizer, attendees.
    desired: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Normalised addresses of the mailboxes that must hold the event now.
    present: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The latest write's correlation id, on the log lines of the work it caused.
    correlation_id: str = Field(default="-", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)


class Placement(SQLModel, table=True):
    """The event in one mailbox: the unit of work, claimed by one worker at a time under a lease."""

    __table_args__ = (
        UniqueConstraint("event_pk", "mailbox"),
        Index("ix_placement_due", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    event_pk: int = Field(foreign_key="event.id", index=True)
    mailbox: str = Field(max_length=320)
    # The item the mailbox holds for the event after the last success; None when it holds none.
    item_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The event version this mailbox must reach, and the last version a task finished (either way).
    target_version: int = 0
    done_version: int = 0
    last_code: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    # When the placement is next runnable: to reach its target, after a back-off, or to verify that a write of
    # an earlier try did not land late. None when there is nothing to do.
    due_at: datetime | None = None
    # The claim: whoever holds an unexpired lease is the only one who may write this mailbox's item.
    lease_token: str | None = Field(default=None, max_length=32)
    lease_expires_at: datetime | None = None
    # A write of an earlier claim may have been on its way to Exchange until then (its lease ran out, or its call
    # ended without an answer); no second create before that time plus the settle time.
    inflight_until: datetime | None = None
    # The time budget for transient failures runs from the first try at the current target.
    first_tried_at: datetime | None = None
    # A message for this placement was handed to the broker then and not consumed yet.
    enqueued_at: datetime | None = None
    # The primary address of the mailbox ``mailbox`` names, written by the first claim that resolved it and never
    # changed: placements of one event with the same one are one mailbox, converged by one of them at a time.
    resolved: str | None = Field(default=None, max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    # One job per accepted version of an event: a second would mean two writes took the same place in line.
    __table_args__ = (
        Index("ix_job_tenant_created", "tenant_id", "created_at"),
        UniqueConstraint("event_pk", "version", name="uq_job_event_version"),
    )

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    kind: str = Field(max_length=20)
    operation: str = Field(max_length=20)
    event_pk: int = Field(foreign_key="event.id", index=True)
    event_id: str = Field(max_length=255)
    version: int
    correlation_id: str = Field(max_length=200)
    state: str = Field(default="pending", max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class JobResult(SQLModel, table=True):
    __table_args__ = (
        Index("ix_jobresult_pending", "tenant_id", "mailbox", "error_code"),
        Index("ix_jobresult_placement", "event_pk", "mailbox", "error_code"),
        # Whether a job has a pending result left: asked each time one of its placements finishes.
        Index("ix_jobresult_job", "job_id", "error_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", max_length=32)
    tenant_id: int = Field(foreign_key="tenant.id")
    # The job's event and version, so a worker finishes a placement's results without reading the jobs.
    event_pk: int = Field(foreign_key="event.id")
    version: int
    position: int
    email: str = Field(max_length=320)
    mailbox: str = Field(max_length=320)
    error_code: str = Field(default=PENDING, max_length=100)
    attempts: int = 0
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)


class MailboxAddress(SQLModel, table=True):
    """An address as the tenant's directory resolved it, trusted for ``DOWNSYNC_ADDRESS_CACHE_SECONDS``: the primary
    address of the mailbox it names, or None when the directory has no such mailbox (it then stands for itself)."""

    __table_args__ = (UniqueConstraint("tenant_id", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    address: str = Field(max_length=320)  # lower-cased
    primary_address: str | None = Field(default=None, max_length=320)  # lower-cased
    resolved_at: datetime = Field(default_factory=utcnow)


# --- result webhooks ---------------------------------------------------------------------------------------------


class WebhookSubscription(SQLModel, table=True):
    """A callback URL of a tenant (or of one of its API clients), told when a job (and, if asked, each mailbox result)
    becomes final. The signing secret is kept encrypted; after a rotation the previous one signs too until it
    expires."""

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    client_pk: int | None = Field(default=None, foreign_key="apiclient.id", index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    each_result: bool = False
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    previous_secret_encrypted: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    previous_expires_at: datetime | None = None
    # Results that became final since then (less a margin for late commits) are looked for by the delivery loop.
    results_scanned_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    rotated_at: datetime | None = None


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription (the outbox): written with the change it reports, sent until a 2xx or the retry
    window ends, claimed under a lease like a placement so two workers never send it at once."""

    __table_args__ = (
        # Events found by scanning (a result become final, a job final when accepted) are written once per
        # subscription however many loops find them; a job closed by close_jobs has no key (it is closed once).
        UniqueConstraint("subscription_id", "dedupe_key", name="uq_webhookdelivery_dedupe"),
        Index("ix_webhookdelivery_due", "due_at"),
        Index("ix_webhookdelivery_log", "subscription_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    subscription_id: str = Field(foreign_key="webhooksubscription.id", max_length=40)
    tenant_id: int = Field(foreign_key="tenant.id")
    event: str = Field(max_length=20)  # job.final, result.final
    job_id: str = Field(foreign_key="job.id", max_length=32, index=True)
    # result.final: the mailbox as the caller listed it.
    email: str | None = Field(default=None, max_length=320)
    dedupe_key: str | None = Field(default=None, max_length=100)
    # The job document as it was when the event happened; exactly these bytes are signed and sent.
    body: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default="pending", max_length=20)  # pending, delivered, failed
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    # The retry window runs from here: the first attempt, or the latest redeliver call.
    retry_from: datetime | None = None
    # When it may next be sent; None once delivered or failed for good.
    due_at: datetime | None = None
    lease_token: str | None = Field(default=None, max_length=32)
    lease_expires_at: datetime | None = None
    # A message for it was handed to the broker then and not consumed yet.
    enqueued_at: datetime | None = None
    delivered_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookAttempt(SQLModel, table=True):
    """One try at sending a delivery, for the delivery log."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(foreign_key="webhookdelivery.id", max_length=40, index=True)
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# Webhooks that ask for each result look for results become final since their last look: by tenant and time.
Index("ix_jobresult_tenant_updated", JobResult.tenant_id, JobResult.updated_at)  # type: ignore[arg-type]
