"""label join keyed by storage sequence: new rows append, ids are indexed in memory

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "model, id, seq, ts, pane, prediction, groups, label, labeled_at, expires_at"


def _rebuild(key: tuple[str, str], *, with_rowid: bool) -> None:
    """Copy ``label_join`` into a table of the same columns with primary key ``key``."""
    op.create_table(
        "label_join_rebuilt",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("pane", sa.BigInteger(), nullable=False),
        sa.Column("prediction", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("labeled_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        f"INSERT INTO label_join_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM label_join "
        f"ORDER BY {', '.join(key)}"
    )
    op.drop_table("label_join")
    op.rename_table("label_join_rebuilt", "label_join")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE label_join RENAME CONSTRAINT label_join_rebuilt_pkey TO label_join_pkey"
        )
    op.create_index("ix_label_join_expiry", "label_join", ["model", "expires_at"], unique=False)


def upgrade() -> None:
    _rebuild(("model", "seq"), with_rowid=False)


def downgrade() -> None:
    _rebuild(("model", "id"), with_rowid=True)
    op.create_index("ix_label_join_seq", "label_join", ["model", "seq"], unique=False)
