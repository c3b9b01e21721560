"""calls: one foreign key (task_id, account_id) -> tasks (id, account_id) for the two

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing call already has its task's account: both were written together
    # from the same submission, and nothing changes either afterwards.
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_tasks_id_account_id"), ["id", "account_id"]
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_calls_account_id_accounts"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_calls_task_id_tasks"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_task_id_tasks"),
            "tasks",
            ["task_id", "account_id"],
            ["id", "account_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_calls_task_id_tasks"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_task_id_tasks"), "tasks", ["task_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_account_id_accounts"), "accounts", ["account_id"], ["id"]
        )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tasks_id_account_id"), type_="unique")
