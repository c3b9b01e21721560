"""failed sign-ins, for throttling password guessing

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_sign_ins",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_sign_ins")),
    )
    op.create_index(
        op.f("ix_failed_sign_ins_appid_client_ip_failed_at"),
        "failed_sign_ins",
        ["appid", "client_ip", "failed_at"],
    )
    op.create_index(op.f("ix_failed_sign_ins_failed_at"), "failed_sign_ins", ["failed_at"])


def downgrade() -> None:
    op.drop_table("failed_sign_ins")
