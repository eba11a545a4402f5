"""The store: tenants and their tokens, events' desired state, per-mailbox placements, jobs and results.

Every row carries its tenant. An ``Event`` holds the latest accepted write for one Salesforce event
(its desired state); each ``Placement`` is that event in one mailbox, converging to the event's
version; each ``Job`` is one accepted call, with a ``JobResult`` per mailbox that callers poll.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

PENDING = "Pending"
NO_ERROR = "NoError"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Tenant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    ews_url: str = Field(max_length=500)
    ews_username: str = Field(max_length=320)
    # Encrypted with the settings' secret key; never logged.
    ews_password_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    ews_auth_type: str = Field(default="basic", max_length=20)
    ews_build: str = Field(default="15.1.2507.6", max_length=40)
    # Availability: which free/busy states count as unavailable, and what a failed lookup reports.
    busy_types: str = Field(default="Busy,OOF,Tentative,WorkingElsewhere", max_length=100)
    availability_on_error: str = Field(default="closed", max_length=10)
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None

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
    updated_at: datetime = Field(default_factory=utcnow)


class Placement(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("event_pk", "mailbox"),
        Index("ix_placement_pending", "done_version", "target_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    event_pk: int = Field(foreign_key="event.id", index=True)
    mailbox: str = Field(max_length=320)
    item_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The event version this mailbox must reach, and the last version a task finished (either way).
    target_version: int = 0
    done_version: int = 0
    last_code: str | None = Field(default=None, max_length=100)
    # Tries at the current target; the retry limit counts these, whatever the broker re-delivered.
    attempts: int = 0
    enqueued_at: datetime | None = None
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
    __table_args__ = (Index("ix_jobresult_pending", "tenant_id", "mailbox", "error_code"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=32)
    tenant_id: int = Field(foreign_key="tenant.id")
    position: int
    email: str = Field(max_length=320)
    mailbox: str = Field(max_length=320)
    error_code: str = Field(default=PENDING, max_length=100)
    attempts: int = 0
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)
