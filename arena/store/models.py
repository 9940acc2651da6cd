"""SQLAlchemy 2.0 models of the ratings store: annotators, models, rounds (+ items, skips), generations, ratings, votes.

The migrations in ``arena/store/migrations/versions`` must produce exactly this schema; a test
compares the two with alembic's ``compare_metadata``. Change both together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: alembic needs them to alter or drop constraints later (and SQLite
# can only do that through batch mode, which matches constraints by name).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("annotator", "researcher")
ROUND_STATUSES = ("draft", "running", "closed")
VOTE_CHOICES = ("a", "b", "tie", "both_bad")
# A vote's choice in the statistics' terms (arena.stats: winner in model_a, model_b, tie, both_bad).
WINNER_OF_CHOICE = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "both_bad"}
POSITIONS = ("left", "right")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timestamp that is always stored and returned as UTC, whatever the backend.

    SQLite keeps no time zone and PostgreSQL returns the session's; without this the same row would
    read back naive on one and shifted on the other.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: sa.JSON(), list[Any]: sa.JSON()}


class Annotator(Base):
    """A person who rates; ``researcher`` may also create rounds and see names in blind mode."""

    __tablename__ = "annotators"
    __table_args__ = (sa.CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    role: Mapped[str] = mapped_column(sa.String(20), default="annotator")
    # A disabled account cannot log in and its sessions are gone; its ratings and votes stay.
    disabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Wrong passwords in a row and, past the limit, until when logins are refused without checking.
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """A logged-in browser: the SHA-256 of its cookie token (never the token), its account, last use.

    In the store rather than in one process's memory, so a password change or a disabled account ends
    the sessions of every arena process at once, and / and /en/ share one login.
    """

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    annotator_id: Mapped[int] = mapped_column(sa.ForeignKey("annotators.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Model(Base):
    """A model entry of the arena: a backend plus base model plus optional adapter."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    backend: Mapped[str] = mapped_column(sa.String(50))
    base_model: Mapped[str | None] = mapped_column(sa.String(500))
    adapter: Mapped[str | None] = mapped_column(sa.String(500))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Round(Base):
    """A blind A/B round; its config is frozen once it has started."""

    __tablename__ = "rounds"
    __table_args__ = (sa.CheckConstraint(_in("status", ROUND_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(default=0)
    # Drawn when the round is created and never sent to a browser: pairs and screen sides follow from
    # it, so nobody can compute them from the public code and the (known) seed.
    secret: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]


class Generation(Base):
    """One model answer to one assistant turn of one dialog, in one context (replay, live, a round).

    ``context`` is never NULL because SQLite (and PostgreSQL by default) treat NULLs as distinct in
    a UNIQUE constraint; a NULL round would let every re-generation insert a new row.
    ``revision`` counts answers to the same key: an answer that was rated or voted on is never
    rewritten; answering again adds the next revision, so every rating points at the text it judged.
    """

    __tablename__ = "generations"
    __table_args__ = (
        sa.UniqueConstraint(
            "eval_set", "dialog_id", "turn_index", "model_id", "context", "revision", name="uq_generations_key"
        ),
        sa.CheckConstraint("turn_index >= 0", name="turn_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    eval_set: Mapped[str] = mapped_column(sa.String(200))
    dialog_id: Mapped[str] = mapped_column(sa.String(300))
    turn_index: Mapped[int]
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"), index=True)
    round_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rounds.id"), index=True)
    context: Mapped[str] = mapped_column(sa.String(100))
    revision: Mapped[int] = mapped_column(default=0, server_default="0")
    prompt_hash: Mapped[str] = mapped_column(sa.String(64), default="")
    text: Mapped[str] = mapped_column(sa.Text, default="")
    tool_calls: Mapped[list[Any] | None]
    finish_reason: Mapped[str | None] = mapped_column(sa.String(50))
    error: Mapped[str | None] = mapped_column(sa.Text)
    ttft_ms: Mapped[float | None]
    total_ms: Mapped[float | None]
    tokens: Mapped[int | None]
    tokens_per_s: Mapped[float | None]
    gt_diff: Mapped[Any | None] = mapped_column(sa.JSON)
    similarity: Mapped[float | None]
    tool_name_match: Mapped[bool | None]
    tool_args_match: Mapped[bool | None]
    # Style counts of the text (arena.core.style), for style-controlled ratings.
    style_length: Mapped[int | None]
    style_headers: Mapped[int | None]
    style_lists: Mapped[int | None]
    style_bold: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Rating(Base):
    """An annotator's 1-5 score of one generation; a second submission updates the first."""

    __tablename__ = "ratings"
    __table_args__ = (
        sa.UniqueConstraint("generation_id", "annotator_id", name="uq_ratings_generation_annotator"),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="score"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(sa.ForeignKey("generations.id"))
    annotator_id: Mapped[int] = mapped_column(sa.ForeignKey("annotators.id"), index=True)
    score: Mapped[int]
    criteria: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RatingRevision(Base):
    """An earlier version of a rating, kept when the annotator edits it (nothing rated is lost)."""

    __tablename__ = "rating_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(sa.ForeignKey("ratings.id"), index=True)
    score: Mapped[int]
    criteria: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    rated_at: Mapped[dt.datetime]  # when this version was given (the rating's updated_at then)
    replaced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Vote(Base):
    """A blind A/B preference on one round item; the first vote of an annotator on an item stands."""

    __tablename__ = "votes"
    __table_args__ = (
        sa.UniqueConstraint("round_id", "item_key", "annotator_id", name="uq_votes_round_item_annotator"),
        sa.CheckConstraint(_in("choice", VOTE_CHOICES), name="choice"),
        sa.CheckConstraint(_in("a_position", POSITIONS), name="a_position"),
        sa.CheckConstraint("generation_a_id <> generation_b_id", name="distinct_sides"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"))
    item_key: Mapped[str] = mapped_column(sa.String(300))
    generation_a_id: Mapped[int] = mapped_column(sa.ForeignKey("generations.id"), index=True)
    generation_b_id: Mapped[int] = mapped_column(sa.ForeignKey("generations.id"), index=True)
    # Which screen side showed generation A: lets stats check for position bias.
    a_position: Mapped[str] = mapped_column(sa.String(5))
    annotator_id: Mapped[int] = mapped_column(sa.ForeignKey("annotators.id"), index=True)
    choice: Mapped[str] = mapped_column(sa.String(10))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RoundItem(Base):
    """One blind pair of a started round: a replay turn, two models, and which screen side shows A.

    Written once when the round starts, so the queue, the positions and the export never depend on
    eval-set files that may change afterwards.
    """

    __tablename__ = "round_items"
    __table_args__ = (
        sa.UniqueConstraint("round_id", "item_key", name="uq_round_items_round_item"),
        sa.CheckConstraint(_in("a_position", POSITIONS), name="a_position"),
        sa.CheckConstraint("model_a_id <> model_b_id", name="distinct_models"),
        sa.CheckConstraint("turn_index >= 0", name="turn_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"))
    item_key: Mapped[str] = mapped_column(sa.String(300))
    ordinal: Mapped[int]
    eval_set: Mapped[str] = mapped_column(sa.String(200))
    dialog_id: Mapped[str] = mapped_column(sa.String(300))
    turn_index: Mapped[int]
    model_a_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"))
    model_b_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"))
    a_position: Mapped[str] = mapped_column(sa.String(5))


class Skip(Base):
    """An annotator passed on a round item (with a reason); the item is not served to them again."""

    __tablename__ = "skips"
    __table_args__ = (
        sa.UniqueConstraint("round_id", "item_key", "annotator_id", name="uq_skips_round_item_annotator"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"))
    item_key: Mapped[str] = mapped_column(sa.String(300))
    annotator_id: Mapped[int] = mapped_column(sa.ForeignKey("annotators.id"), index=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


RECALL_STATUSES = ("ok", "no_call", "wrong_tool", "malformed", "error")


class RecallQuery(Base):
    """A model's search query for one retrieval item (``arena recall``), cached so a rerun resumes.

    ``prompt_hash`` covers what the model saw and the sampling options: an edited dialog or changed
    options is a new row. ``status`` other than ``ok`` means no query (``error``: the request failed,
    and is retried on the next run); ``error`` says why.
    """

    __tablename__ = "recall_queries"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "eval_set", "item_id", "prompt_hash", name="uq_recall_queries_key"),
        sa.CheckConstraint(_in("status", RECALL_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"))
    eval_set: Mapped[str] = mapped_column(sa.String(200))
    item_id: Mapped[str] = mapped_column(sa.String(300))
    prompt_hash: Mapped[str] = mapped_column(sa.String(64))
    query: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20))
    tool_calls: Mapped[list[Any] | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
