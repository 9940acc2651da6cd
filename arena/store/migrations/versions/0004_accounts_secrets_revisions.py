"""Accounts that can be disabled, throttled and logged out everywhere; per-round secrets; rated
answers and ratings that are never overwritten.

- annotators: ``disabled``, ``failed_logins``, ``locked_until``; ``sessions`` (hashed login tokens).
- rounds: ``secret``, drawn here for existing rounds (their stored items keep their sides).
- generations: ``revision`` joins the unique key, so answering a rated turn again adds a row.
- rating_revisions: earlier versions of edited ratings.

Revision ID: 0004_accounts_secrets_revisions
Revises: 0003_recall_queries
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004_accounts_secrets_revisions"
down_revision = "0003_recall_queries"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
OLD_KEY = ["eval_set", "dialog_id", "turn_index", "model_id", "context"]


def upgrade() -> None:
    with op.batch_alter_table("annotators") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("locked_until", TIMESTAMP, nullable=True))
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name=op.f("fk_sessions_annotator_id_annotators")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_annotator_id"), "sessions", ["annotator_id"])

    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("secret", sa.String(length=64), server_default="", nullable=False))
    conn = op.get_bind()
    for (round_id,) in conn.execute(sa.text("SELECT id FROM rounds")).all():
        conn.execute(sa.text("UPDATE rounds SET secret = :s WHERE id = :i"),
                     {"s": secrets.token_hex(16), "i": round_id})

    # SQLite alters a unique constraint only by rebuilding the table (batch mode does that).
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))
        batch.drop_constraint("uq_generations_key", type_="unique")
        batch.create_unique_constraint("uq_generations_key", [*OLD_KEY, "revision"])

    op.create_table(
        "rating_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rated_at", TIMESTAMP, nullable=False),
        sa.Column("replaced_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["rating_id"], ["ratings.id"], name=op.f("fk_rating_revisions_rating_id_ratings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_revisions")),
    )
    op.create_index(op.f("ix_rating_revisions_rating_id"), "rating_revisions", ["rating_id"])


def downgrade() -> None:
    op.drop_table("rating_revisions")
    # Later revisions of a key cannot fit the old key: keep the newest (revision 0 is the oldest).
    op.execute("DELETE FROM generations WHERE revision > 0")
    with op.batch_alter_table("generations") as batch:
        batch.drop_constraint("uq_generations_key", type_="unique")
        batch.create_unique_constraint("uq_generations_key", OLD_KEY)
        batch.drop_column("revision")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("secret")
    op.drop_table("sessions")
    with op.batch_alter_table("annotators") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")
        batch.drop_column("disabled")
