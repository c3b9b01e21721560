"""calls.submitted_number: each number as the customer wrote it

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, and not back-filled: rewriting every call row of a large database would
    # hold it for long, and readers take the E.164 digits for rows stored before this.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_number", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("submitted_number")
