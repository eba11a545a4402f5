"""tenant availability settings

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "busy_types",
                sqlmodel.sql.sqltypes.AutoString(length=100),
                nullable=False,
                server_default="Busy,OOF,Tentative,WorkingElsewhere",
            )
        )
        batch_op.add_column(
            sa.Column(
                "availability_on_error",
                sqlmodel.sql.sqltypes.AutoString(length=10),
                nullable=False,
                server_default="closed",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("availability_on_error")
        batch_op.drop_column("busy_types")
