"""result webhooks: subscriptions, the delivery outbox and its attempts

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooksubscription",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("each_result", sa.Boolean(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("previous_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("results_scanned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rotated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["client_pk"], ["apiclient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhooksubscription", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhooksubscription_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhooksubscription_client_pk"), ["client_pk"], unique=False)

    op.create_table(
        "webhookdelivery",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subscription_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("retry_from", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("lease_token", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("lease_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("enqueued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhooksubscription.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "dedupe_key", name="uq_webhookdelivery_dedupe"),
    )
    with op.batch_alter_table("webhookdelivery", schema=None) as batch_op:
        batch_op.create_index("ix_webhookdelivery_due", ["due_at"], unique=False)
        batch_op.create_index("ix_webhookdelivery_log", ["subscription_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhookdelivery_job_id"), ["job_id"], unique=False)

    op.create_table(
        "webhookattempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhookdelivery.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhookattempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhookattempt_delivery_id"), ["delivery_id"], unique=False)

    # Subscriptions that ask for each result look for results become final since their last look.
    with op.batch_alter_table("jobresult", schema=None) as batch_op:
        batch_op.create_index("ix_jobresult_tenant_updated", ["tenant_id", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobresult", schema=None) as batch_op:
        batch_op.drop_index("ix_jobresult_tenant_updated")
    op.drop_table("webhookattempt")
    op.drop_table("webhookdelivery")
    op.drop_table("webhooksubscription")
