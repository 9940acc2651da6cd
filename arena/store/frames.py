"""Read-only queries that flatten the store into pandas DataFrames for stats and export."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from arena.core.style import STYLE_FEATURES
from arena.store.models import Annotator, Generation, Model, Rating, Round, Skip, Vote


def _dtype(column_type: sa.types.TypeEngine) -> str | None:
    # Nullable numbers and booleans would otherwise come out as object columns full of None.
    if isinstance(column_type, sa.Boolean):
        return "boolean"
    if isinstance(column_type, sa.Float):
        return "float64"
    if isinstance(column_type, sa.Integer):
        return "Int64"  # replaced by plain int64 below when the column has no NULL
    return None


def _frame(conn: sa.Connection, stmt: sa.Select) -> pd.DataFrame:
    result = conn.execute(stmt)
    # Columns come from the query, so an empty store still yields the full set of (empty) columns.
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for name, column in zip(frame.columns, stmt.selected_columns):
        if name.endswith("_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif (dtype := _dtype(column.type)) is not None:
            if dtype == "Int64" and not frame[name].isna().any():
                dtype = "int64"
            frame[name] = frame[name].astype(dtype)
    return frame


def ratings_frame(conn: sa.Connection) -> pd.DataFrame:
    """One row per rating, with annotator, model and dialog coordinates spelled out."""
    g, m, a, r = Generation, Model, Annotator, Round
    stmt = (
        sa.select(
            Rating.id.label("rating_id"),
            Rating.generation_id,
            a.name.label("annotator"),
            a.role.label("annotator_role"),
            m.name.label("model"),
            g.eval_set,
            g.dialog_id,
            g.turn_index,
            g.context,
            g.round_id,
            r.name.label("round"),
            Rating.score,
            Rating.criteria,
            Rating.comment,
            Rating.created_at,
            Rating.updated_at,
        )
        .join(g, Rating.generation_id == g.id)
        .join(m, g.model_id == m.id)
        .join(a, Rating.annotator_id == a.id)
        .outerjoin(r, g.round_id == r.id)
        .order_by(Rating.id)
    )
    return _frame(conn, stmt)


def votes_frame(conn: sa.Connection, round_id: int | None = None) -> pd.DataFrame:
    """One row per A/B vote, with both models' names, the shown position and the choice."""
    ga, gb = aliased(Generation, name="ga"), aliased(Generation, name="gb")
    ma, mb = aliased(Model, name="ma"), aliased(Model, name="mb")
    stmt = (
        sa.select(
            Vote.id.label("vote_id"),
            Vote.round_id,
            Round.name.label("round"),
            Vote.item_key,
            ga.eval_set,
            ga.dialog_id,
            ga.turn_index,
            Vote.generation_a_id,
            Vote.generation_b_id,
            ma.name.label("model_a"),
            mb.name.label("model_b"),
            Vote.a_position,
            Annotator.name.label("annotator"),
            Vote.choice,
            Vote.created_at,
            *(getattr(ga, f"style_{f}").label(f"{f}_a") for f in STYLE_FEATURES),
            *(getattr(gb, f"style_{f}").label(f"{f}_b") for f in STYLE_FEATURES),
        )
        .join(Round, Vote.round_id == Round.id)
        .join(ga, Vote.generation_a_id == ga.id)
        .join(gb, Vote.generation_b_id == gb.id)
        .join(ma, ga.model_id == ma.id)
        .join(mb, gb.model_id == mb.id)
        .join(Annotator, Vote.annotator_id == Annotator.id)
        .order_by(Vote.id)
    )
    if round_id is not None:
        stmt = stmt.where(Vote.round_id == round_id)
    return _frame(conn, stmt)


def skips_frame(conn: sa.Connection, round_id: int | None = None) -> pd.DataFrame:
    """One row per skipped round item: round, item, annotator, reason, when."""
    stmt = (
        sa.select(
            Skip.id.label("skip_id"),
            Skip.round_id,
            Round.name.label("round"),
            Skip.item_key,
            Annotator.name.label("annotator"),
            Skip.reason,
            Skip.created_at,
        )
        .join(Round, Skip.round_id == Round.id)
        .join(Annotator, Skip.annotator_id == Annotator.id)
        .order_by(Skip.id)
    )
    if round_id is not None:
        stmt = stmt.where(Skip.round_id == round_id)
    return _frame(conn, stmt)


def generations_frame(conn: sa.Connection, round_id: int | None = None) -> pd.DataFrame:
    """One row per generation with its text, tool calls, timings and automatic metrics."""
    g = Generation
    stmt = (
        sa.select(
            g.id.label("generation_id"),
            Model.name.label("model"),
            Model.backend,
            g.eval_set,
            g.dialog_id,
            g.turn_index,
            g.context,
            g.round_id,
            Round.name.label("round"),
            g.prompt_hash,
            g.text,
            g.tool_calls,
            g.finish_reason,
            g.error,
            g.ttft_ms,
            g.total_ms,
            g.tokens,
            g.tokens_per_s,
            g.gt_diff,
            g.similarity,
            g.tool_name_match,
            g.tool_args_match,
            g.style_length,
            g.style_headers,
            g.style_lists,
            g.style_bold,
            g.created_at,
        )
        .join(Model, g.model_id == Model.id)
        .outerjoin(Round, g.round_id == Round.id)
        .order_by(g.id)
    )
    if round_id is not None:
        stmt = stmt.where(g.round_id == round_id)
    return _frame(conn, stmt)
