"""Blind rounds: the frozen item list of a started round (pairs, shown positions) and skips.

Revision ID: 0002_round_items_skips
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_round_items_skips"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "round_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=300), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("eval_set", sa.String(length=200), nullable=False),
        sa.Column("dialog_id", sa.String(length=300), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("model_a_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("a_position", sa.String(length=5), nullable=False),
        sa.CheckConstraint("a_position IN ('left', 'right')", name=op.f("ck_round_items_a_position")),
        sa.CheckConstraint("model_a_id <> model_b_id", name=op.f("ck_round_items_distinct_models")),
        sa.CheckConstraint("turn_index >= 0", name=op.f("ck_round_items_turn_index")),
        sa.ForeignKeyConstraint(["model_a_id"], ["models.id"], name=op.f("fk_round_items_model_a_id_models")),
        sa.ForeignKeyConstraint(["model_b_id"], ["models.id"], name=op.f("fk_round_items_model_b_id_models")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_round_items_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_items")),
        sa.UniqueConstraint("round_id", "item_key", name="uq_round_items_round_item"),
    )
    op.create_table(
        "skips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=300), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name=op.f("fk_skips_annotator_id_annotators")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_skips_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skips")),
        sa.UniqueConstraint("round_id", "item_key", "annotator_id", name="uq_skips_round_item_annotator"),
    )
    op.create_index(op.f("ix_skips_annotator_id"), "skips", ["annotator_id"])


def downgrade() -> None:
    op.drop_table("skips")
    op.drop_table("round_items")
