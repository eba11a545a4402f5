"""sync core: backends per tenant, tenant-scoped tags, leased placements, results keyed by placement

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EWS_COLUMNS = ("ews_url", "ews_username", "ews_password_encrypted", "ews_auth_type", "ews_build")


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("backend", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False, server_default="ews")
        )
        batch_op.add_column(sa.Column("backend_options", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("backend_secrets", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    tenant = sa.table(
        "tenant",
        sa.column("id", sa.Integer()),
        *(sa.column(name, sa.String()) for name in EWS_COLUMNS),
        sa.column("tag_id", sa.String()),
        sa.column("backend_options", sa.JSON()),
        sa.column("backend_secrets", sa.JSON()),
        sa.column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    now = datetime.now(UTC)
    for row in bind.execute(sa.select(tenant.c.id, *(tenant.c[name] for name in EWS_COLUMNS))).all():
        # The password moves as it is stored, still encrypted: a migration never needs the secret key.
        bind.execute(
            tenant.update()
            .where(tenant.c.id == row.id)
            .values(
                tag_id=uuid.uuid4().hex,
                backend_options={
                    "url": row.ews_url,
                    "username": row.ews_username,
                    "auth_type": row.ews_auth_type,
                    "build": row.ews_build,
                },
                backend_secrets={"password": row.ews_password_encrypted},
                updated_at=now,
            )
        )
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.alter_column("tag_id", nullable=False)
        batch_op.alter_column("backend_options", nullable=False)
        batch_op.alter_column("backend_secrets", nullable=False)
        batch_op.alter_column("updated_at", nullable=False)
        batch_op.create_unique_constraint("uq_tenant_tag_id", ["tag_id"])
        for name in EWS_COLUMNS:
            batch_op.drop_column(name)

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "correlation_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default="-"
            )
        )

    with op.batch_alter_table("placement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_token", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("inflight_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("first_tried_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.drop_index("ix_placement_pending")
        batch_op.create_index("ix_placement_due", ["due_at"], unique=False)
    placement = sa.table(
        "placement",
        sa.column("done_version", sa.Integer()),
        sa.column("target_version", sa.Integer()),
        sa.column("due_at", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("enqueued_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    # Unfinished work of the old core becomes due at once; an old message for it is harmless.
    bind.execute(
        placement.update()
        .where(placement.c.done_version < placement.c.target_version)
        .values(due_at=now, enqueued_at=None)
    )

    with op.batch_alter_table("jobresult", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_pk", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    job = sa.table(
        "job", sa.column("id", sa.String()), sa.column("event_pk", sa.Integer()), sa.column("version", sa.Integer())
    )
    result = sa.table(
        "jobresult",
        sa.column("job_id", sa.String()),
        sa.column("event_pk", sa.Integer()),
        sa.column("version", sa.Integer()),
    )
    bind.execute(
        result.update().values(
            event_pk=sa.select(job.c.event_pk).where(job.c.id == result.c.job_id).scalar_subquery(),
            version=sa.select(job.c.version).where(job.c.id == result.c.job_id).scalar_subquery(),
        )
    )
    with op.batch_alter_table("jobresult", schema=None) as batch_op:
        batch_op.alter_column("event_pk", nullable=False)
        batch_op.alter_column("version", nullable=False)
        batch_op.create_foreign_key("fk_jobresult_event", "event", ["event_pk"], ["id"])
        batch_op.create_index("ix_jobresult_placement", ["event_pk", "mailbox", "error_code"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("0004 moves tenant settings into backend options; restore a backup to go back")
