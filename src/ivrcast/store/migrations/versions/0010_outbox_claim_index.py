"""outbox (status, account_id, next_attempt_at): the per-account claim without a scan

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_outbox_status_account_id_next_attempt_at"),
        "outbox",
        ["status", "account_id", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_status_account_id_next_attempt_at"), table_name="outbox")
