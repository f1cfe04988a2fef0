"""spread: a model spread over partitions hands in per-partition pane summaries

Revision ID: 0014_spread
Revises: 0013_business
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_spread"
down_revision: str | None = "0013_business"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "window_partials",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("pane", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "partition", "pane"),
    )
    op.create_table(
        "spread_progress",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("closed_until", sa.BigInteger(), nullable=True),
        sa.Column("idle", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("model", "partition"),
    )


def downgrade() -> None:
    op.drop_table("spread_progress")
    op.drop_table("window_partials")
