"""calls.dialed_by (the node that dialed a call, kept after its end) and nodes.stats

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("dialed_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("stats", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("stats")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("dialed_by")
