"""API clients (OAuth 2.0 refresh tokens, HMAC), expiring access tokens, per-tenant rate limits

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apiclient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("apiclient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apiclient_client_id"), ["client_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_apiclient_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "refreshtoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("family", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_pk"], ["apiclient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("refreshtoken", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refreshtoken_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_refreshtoken_family"), ["family"], unique=False)
        batch_op.create_index(batch_op.f("ix_refreshtoken_token_hash"), ["token_hash"], unique=True)

    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_pk", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("family", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key("fk_apitoken_client", "apiclient", ["client_pk"], ["id"])
        batch_op.create_index(batch_op.f("ix_apitoken_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_apitoken_family"), ["family"], unique=False)

    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit_writes", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("rate_limit_availability", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_availability")
        batch_op.drop_column("rate_limit_writes")
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apitoken_family"))
        batch_op.drop_index(batch_op.f("ix_apitoken_client_pk"))
        batch_op.drop_constraint("fk_apitoken_client", type_="foreignkey")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("family")
        batch_op.drop_column("client_pk")
    op.drop_table("refreshtoken")
    op.drop_table("apiclient")
