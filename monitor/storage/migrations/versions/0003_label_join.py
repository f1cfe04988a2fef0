"""label join

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:36:40.351242
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_join",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("pane", sa.BigInteger(), nullable=False),
        sa.Column("prediction", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("labeled_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "id"),
    )
    with op.batch_alter_table("label_join", schema=None) as batch_op:
        batch_op.create_index("ix_label_join_expiry", ["model", "expires_at"], unique=False)

    op.create_table(
        "label_panes",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("pane", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "pane"),
    )
    op.create_table(
        "orphan_labels",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "id"),
    )
    with op.batch_alter_table("orphan_labels", schema=None) as batch_op:
        batch_op.create_index("ix_orphan_labels_expiry", ["model", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orphan_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_orphan_labels_expiry")

    op.drop_table("orphan_labels")
    op.drop_table("label_panes")
    with op.batch_alter_table("label_join", schema=None) as batch_op:
        batch_op.drop_index("ix_label_join_expiry")

    op.drop_table("label_join")
