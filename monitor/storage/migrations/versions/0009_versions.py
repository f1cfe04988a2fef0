"""versions: the model version is part of a record's key; comparisons carry champion, interval

With ``versions.split`` a model's versions are monitored separately, so records of the
same window differ by version; ``version_comparison`` records name the champion and the
interval of the difference.

Revision ID: 0009_versions
Revises: 0008_pages
Create Date: 2026-12-04 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_versions"
down_revision: str | None = "0008_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KEY = ["model", "window_index", "kind", "detector", "feature", "metric", "group_attribute"]


def upgrade() -> None:
    op.execute("UPDATE results SET model_version = '' WHERE model_version IS NULL")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_results_key", type_="unique")
        batch_op.alter_column("model_version", existing_type=sa.String(length=255), nullable=False)
        batch_op.create_unique_constraint("uq_results_key", [*_OLD_KEY, "model_version"])
        batch_op.add_column(sa.Column("champion_version", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("ci_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ci_high", sa.Float(), nullable=True))


def downgrade() -> None:
    # Records of versions monitored separately share a key without their version: keep one.
    op.execute(
        "DELETE FROM results WHERE id NOT IN (SELECT min(id) FROM results GROUP BY "
        + ", ".join(_OLD_KEY)
        + ")"
    )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("ci_high")
        batch_op.drop_column("ci_low")
        batch_op.drop_column("champion_version")
        batch_op.drop_constraint("uq_results_key", type_="unique")
        batch_op.alter_column("model_version", existing_type=sa.String(length=255), nullable=True)
        batch_op.create_unique_constraint("uq_results_key", _OLD_KEY)
    op.execute("UPDATE results SET model_version = NULL WHERE model_version = ''")
