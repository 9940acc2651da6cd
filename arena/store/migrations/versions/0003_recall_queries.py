"""Retrieval recall: each model's search query per retrieval item, cached so reruns resume.

Revision ID: 0003_recall_queries
Revises: 0002_round_items_skips
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_recall_queries"
down_revision = "0002_round_items_skips"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recall_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("eval_set", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=300), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'no_call', 'wrong_tool', 'malformed', 'error')", name=op.f("ck_recall_queries_status")
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_recall_queries_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_queries")),
        sa.UniqueConstraint("model_id", "eval_set", "item_id", "prompt_hash", name="uq_recall_queries_key"),
    )


def downgrade() -> None:
    op.drop_table("recall_queries")
