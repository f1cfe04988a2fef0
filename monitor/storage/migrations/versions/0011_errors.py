"""errors: waiting predictions keep their feature buckets, results name a bucket

Revision ID: 0011_errors
Revises: 0010_importance
Create Date: 2026-12-04 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_errors"
down_revision: str | None = "0010_importance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("label_join", sa.Column("buckets", sa.Text(), nullable=True))
    op.add_column("results", sa.Column("bucket", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("label_join") as batch:  # SQLite drops a column by copying
        batch.drop_column("buckets")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("bucket")
