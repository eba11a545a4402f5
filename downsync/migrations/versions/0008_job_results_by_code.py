"""job results indexed by job and code: closing a job asks whether any of its results is still pending

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each finished placement asks once whether its job has a pending result left: one index probe, where counting
    # the job's results read every one of them (a 1000-mailbox job read a million rows to close).
    op.create_index("ix_jobresult_job", "jobresult", ["job_id", "error_code"])
    op.drop_index("ix_jobresult_job_id", table_name="jobresult")


def downgrade() -> None:
    op.create_index("ix_jobresult_job_id", "jobresult", ["job_id"])
    op.drop_index("ix_jobresult_job", table_name="jobresult")
