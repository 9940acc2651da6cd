"""Initial schema: annotators, models, rounds, generations, ratings, votes.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# Revisions are frozen: they spell out types rather than import them from arena.store.models.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("role IN ('annotator', 'researcher')", name=op.f("ck_annotators_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("backend", sa.String(length=50), nullable=False),
        sa.Column("base_model", sa.String(length=500), nullable=True),
        sa.Column("adapter", sa.String(length=500), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("status IN ('draft', 'running', 'closed')", name=op.f("ck_rounds_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("name", name=op.f("uq_rounds_name")),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("eval_set", sa.String(length=200), nullable=False),
        sa.Column("dialog_id", sa.String(length=300), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("context", sa.String(length=100), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("finish_reason", sa.String(length=50), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("total_ms", sa.Double(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("tokens_per_s", sa.Double(), nullable=True),
        sa.Column("gt_diff", sa.JSON(), nullable=True),
        sa.Column("similarity", sa.Double(), nullable=True),
        sa.Column("tool_name_match", sa.Boolean(), nullable=True),
        sa.Column("tool_args_match", sa.Boolean(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("turn_index >= 0", name=op.f("ck_generations_turn_index")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_generations_model_id_models")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_generations_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint(
            "eval_set", "dialog_id", "turn_index", "model_id", "context", name="uq_generations_key"
        ),
    )
    op.create_index(op.f("ix_generations_model_id"), "generations", ["model_id"])
    op.create_index(op.f("ix_generations_round_id"), "generations", ["round_id"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_ratings_score")),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_ratings_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name=op.f("fk_ratings_generation_id_generations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("generation_id", "annotator_id", name="uq_ratings_generation_annotator"),
    )
    op.create_index(op.f("ix_ratings_annotator_id"), "ratings", ["annotator_id"])
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=300), nullable=False),
        sa.Column("generation_a_id", sa.Integer(), nullable=False),
        sa.Column("generation_b_id", sa.Integer(), nullable=False),
        sa.Column("a_position", sa.String(length=5), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("choice", sa.String(length=10), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("a_position IN ('left', 'right')", name=op.f("ck_votes_a_position")),
        sa.CheckConstraint("choice IN ('a', 'b', 'tie', 'both_bad')", name=op.f("ck_votes_choice")),
        sa.CheckConstraint("generation_a_id <> generation_b_id", name=op.f("ck_votes_distinct_sides")),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_votes_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(
            ["generation_a_id"], ["generations.id"], name=op.f("fk_votes_generation_a_id_generations")
        ),
        sa.ForeignKeyConstraint(
            ["generation_b_id"], ["generations.id"], name=op.f("fk_votes_generation_b_id_generations")
        ),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_votes_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint("round_id", "item_key", "annotator_id", name="uq_votes_round_item_annotator"),
    )
    op.create_index(op.f("ix_votes_annotator_id"), "votes", ["annotator_id"])
    op.create_index(op.f("ix_votes_generation_a_id"), "votes", ["generation_a_id"])
    op.create_index(op.f("ix_votes_generation_b_id"), "votes", ["generation_b_id"])


def downgrade() -> None:
    # Indexes go with their tables.
    for table in ("votes", "ratings", "generations", "rounds", "models", "annotators"):
        op.drop_table(table)
