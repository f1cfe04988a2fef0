"""importance: result records carry the reference's value of their statistic

Revision ID: 0010_importance
Revises: 0009_versions
Create Date: 2026-12-04 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_importance"
down_revision: str | None = "0009_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("results", sa.Column("reference_value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:  # SQLite drops a column by copying
        batch.drop_column("reference_value")
