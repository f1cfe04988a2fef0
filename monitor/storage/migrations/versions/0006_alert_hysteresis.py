"""alerts: hysteresis (keep_firing_for) and when their subject last reported (resolve_after)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiet", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("prior_quiet", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_seen_at", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute("UPDATE alert_states SET last_seen_at = COALESCE(last_active_at, since)")
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_column("last_active_at")


def downgrade() -> None:
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_active_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE alert_states SET last_active_at = last_seen_at")
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("prior_quiet")
        batch_op.drop_column("quiet")
