"""business: waiting predictions and orphan labels keep their labels' business values

Revision ID: 0013_business
Revises: 0012_segments
Create Date: 2026-12-04 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_business"
down_revision: str | None = "0012_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("label_join", sa.Column("business", sa.Text(), nullable=True))
    op.add_column("orphan_labels", sa.Column("business", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("label_join", "orphan_labels"):
        with op.batch_alter_table(table) as batch:  # SQLite drops a column by copying
            batch.drop_column("business")
