"""pages: the evidence pages find a model's and an incident's notifications by index

Revision ID: 0008_pages
Revises: 0007
Create Date: 2026-12-04 03:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_pages"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alert_outbox_model", "alert_outbox", ["model", "id"])
    op.create_index("ix_alert_outbox_key", "alert_outbox", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_key", table_name="alert_outbox")
    op.drop_index("ix_alert_outbox_model", table_name="alert_outbox")
