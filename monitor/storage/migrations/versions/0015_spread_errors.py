"""spread errors: spread models hand in errors and segments, and say when partitions heard them

Revision ID: 0015_spread_errors
Revises: 0014_spread
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_spread_errors"
down_revision: str | None = "0014_spread"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "error_partials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("pane", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_error_partials_pane", "error_partials", ["model", "pane"])
    op.add_column("window_partials", sa.Column("segments", sa.LargeBinary(), nullable=True))
    op.add_column("spread_progress", sa.Column("errors_until", sa.BigInteger(), nullable=True))
    op.add_column("spread_progress", sa.Column("heard_at", sa.BigInteger(), nullable=True))
    op.add_column(
        "spread_progress",
        sa.Column("caught_up", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "orphan_labels",
        sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("orphan_labels", "late")
    op.drop_column("spread_progress", "caught_up")
    op.drop_column("spread_progress", "heard_at")
    op.drop_column("spread_progress", "errors_until")
    op.drop_column("window_partials", "segments")
    op.drop_index("ix_error_partials_pane", table_name="error_partials")
    op.drop_table("error_partials")
