"""segments: a record names the segment of the model it measures, part of its key

A model with ``segments`` reports every window per segment value as well; those records
differ from the whole model's (``segment`` stored as ``""``) by their segment.

Revision ID: 0012_segments
Revises: 0011_errors
Create Date: 2026-12-04 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_segments"
down_revision: str | None = "0011_errors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KEY = [
    "model",
    "window_index",
    "kind",
    "detector",
    "feature",
    "metric",
    "group_attribute",
    "model_version",
]


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("segment", sa.String(length=255), nullable=False, server_default="")
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("segment", existing_type=sa.String(length=255), server_default=None)
        batch_op.drop_constraint("uq_results_key", type_="unique")
        batch_op.create_unique_constraint("uq_results_key", [*_OLD_KEY, "segment"])


def downgrade() -> None:
    # Segment records share the whole model's key without their segment: drop them.
    op.execute("DELETE FROM results WHERE segment <> ''")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_results_key", type_="unique")
        batch_op.create_unique_constraint("uq_results_key", _OLD_KEY)
        batch_op.drop_column("segment")
