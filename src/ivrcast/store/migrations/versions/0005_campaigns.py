"""campaigns: retry rounds, paused tasks, suppressed calls, do-not-call lists

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CALL_STATES_BEFORE = (
    "queued, dialing, ringing, answered, completed, busy, no_answer, failed, rejected, "
    "expired, canceled, interrupted"
)
_TASK_STATES_BEFORE = ("active", "canceled", "finished")


def _one_of(values: list[str]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    call_states = [*_CALL_STATES_BEFORE.split(", "), "suppressed"]
    task_states = ["active", "paused", "canceled", "finished"]
    # New columns have defaults right for every existing row: round 1 is due and final
    # unless the task asked for retries, which no task before this revision could.
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("default_retries", sa.SmallInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retries", sa.SmallInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("retry_interval", sa.Integer(), server_default="30", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "retry_on", sa.String(length=64), server_default="busy,no_answer", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("suppressed", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(task_states))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("final", sa.Boolean(), server_default="1", nullable=False))
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(call_states))
        batch_op.drop_constraint(op.f("uq_calls_task_id_number"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_calls_task_id_number_round"), ["task_id", "number", "round"]
        )
    op.create_table(
        "dnc",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "number", name=op.f("pk_dnc")),
    )


def downgrade() -> None:
    op.drop_table("dnc")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_calls_task_id_number_round"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_calls_task_id_number"), ["task_id", "number"])
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(_CALL_STATES_BEFORE.split(", ")))
        batch_op.drop_column("final")
        batch_op.drop_column("due_at")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(list(_TASK_STATES_BEFORE)))
        batch_op.drop_column("suppressed")
        batch_op.drop_column("retry_on")
        batch_op.drop_column("retry_interval")
        batch_op.drop_column("retries")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("default_retries")
