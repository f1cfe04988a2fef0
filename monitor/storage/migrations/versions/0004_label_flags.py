"""label flags: one bit per stored prediction says whether it has a label

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:00:00.000000
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 8192


def upgrade() -> None:
    op.create_table(
        "label_flags",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("chunk", sa.BigInteger(), nullable=False),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "chunk"),
    )
    with op.batch_alter_table("label_join", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE label_join SET seq = numbered.n FROM ("
        "SELECT model, id, row_number() OVER (PARTITION BY model ORDER BY ts, id) AS n "
        "FROM label_join) AS numbered "
        "WHERE label_join.model = numbered.model AND label_join.id = numbered.id"
    )
    with op.batch_alter_table("label_join", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index("ix_label_join_seq", ["model", "seq"], unique=False)
    _flag_labelled_rows()


def _flag_labelled_rows() -> None:
    """Set the bit of every prediction that already has a label."""
    connection = op.get_bind()
    models = connection.execute(
        sa.text("SELECT DISTINCT model FROM label_join WHERE label IS NOT NULL")
    ).scalars()
    flags = sa.table(
        "label_flags", sa.column("model"), sa.column("chunk"), sa.column("bits", sa.LargeBinary)
    )
    for model in list(models):
        seqs = np.asarray(
            connection.execute(
                sa.text("SELECT seq FROM label_join WHERE model = :model AND label IS NOT NULL"),
                {"model": model},
            )
            .scalars()
            .all(),
            dtype=np.int64,
        )
        chunks = np.unique(seqs // CHUNK)
        bits = np.zeros((chunks.size, CHUNK), dtype=bool)
        bits[np.searchsorted(chunks, seqs // CHUNK), seqs % CHUNK] = True
        packed = np.packbits(bits, axis=1, bitorder="little")
        rows = zip(chunks, packed, strict=True)
        connection.execute(
            flags.insert(),
            [{"model": model, "chunk": int(c), "bits": data.tobytes()} for c, data in rows],
        )


def downgrade() -> None:
    """Predictions labelled under ``policy: first`` since the upgrade kept no value: they
    get the label '' so that revision 0003 still sees them as labelled."""
    connection = op.get_bind()
    for model, chunk, bits in connection.execute(
        sa.text("SELECT model, chunk, bits FROM label_flags")
    ).all():
        flagged = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")
        seqs = np.flatnonzero(flagged) + chunk * CHUNK
        if seqs.size:
            connection.execute(
                sa.text(
                    "UPDATE label_join SET label = '' "
                    "WHERE model = :model AND seq = :seq AND label IS NULL"
                ),
                [{"model": model, "seq": int(seq)} for seq in seqs],
            )
    with op.batch_alter_table("label_join", schema=None) as batch_op:
        batch_op.drop_index("ix_label_join_seq")
        batch_op.drop_column("seq")
    op.drop_table("label_flags")
