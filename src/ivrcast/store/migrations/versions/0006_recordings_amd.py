"""recordings and answering-machine detection: tasks.record, tasks.amd,
tasks.amdaction; calls.recorded, calls.answered_by, calls.amd_ms; state `machine`

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The call states of 0005_campaigns; this revision adds `machine`.
_BEFORE = (
    "queued", "dialing", "ringing", "answered", "completed", "busy", "no_answer", "failed",
    "rejected", "expired", "canceled", "interrupted", "suppressed",
)  # fmt: skip
_AFTER = (*_BEFORE, "machine")


def _one_of(states: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(s) for s in states)})"


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("amd", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("amdaction", sa.String(length=8), nullable=True))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recorded", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("answered_by", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("amd_ms", sa.Integer(), nullable=True))
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(_AFTER))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_calls_status"), type_="check")
        batch_op.create_check_constraint("status", _one_of(_BEFORE))
        batch_op.drop_column("amd_ms")
        batch_op.drop_column("answered_by")
        batch_op.drop_column("recorded")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("amdaction")
        batch_op.drop_column("amd")
        batch_op.drop_column("record")
