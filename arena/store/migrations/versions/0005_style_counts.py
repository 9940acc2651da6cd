"""Style counts per answer (length in characters without whitespace, markdown headers, list items, bold
spans) for style-controlled Bradley-Terry; stored answers are backfilled from their text.

Revision ID: 0005_style_counts
Revises: 0004_accounts_secrets_revisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from arena.core.style import STYLE_FEATURES, style_counts

revision = "0005_style_counts"
down_revision = "0004_accounts_secrets_revisions"
branch_labels = None
depends_on = None

COLUMNS = [f"style_{name}" for name in STYLE_FEATURES]
# Rows read and written per step of the backfill: bounded memory on a store of millions of answers.
BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "generations",
        sa.column("id", sa.Integer),
        sa.column("text", sa.Text),
        *(sa.column(c, sa.Integer) for c in COLUMNS),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(table.c.id, table.c.text).where(table.c.id > last).order_by(table.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            table.update().where(table.c.id == sa.bindparam("row_id")),
            [{"row_id": row_id, **dict(zip(COLUMNS, style_counts(text)))} for row_id, text in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
