"""calls: the claim's index, (status, task_id, id) in place of (status, nationcode, id)

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
    # The claim fixes status and task and orders by id; led by the nation instead, the old
    # index made it walk every queued call of every task of the country, then sort.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_status_nationcode_id"))
        batch_op.create_index(
            batch_op.f("ix_calls_status_task_id_id"), ["status", "task_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_status_task_id_id"))
        batch_op.create_index(
            batch_op.f("ix_calls_status_nationcode_id"),
            ["status", "nationcode", "id"],
            unique=False,
        )
