"""The Store: the only writer of the ratings database. Every write is one short transaction."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from arena.store.engine import DEFAULT_URL, create_engine, write_engine
from arena.store.models import (
    POSITIONS,
    ROLES,
    VOTE_CHOICES,
    Annotator,
    Generation,
    Model,
    Rating,
    Round,
    Vote,
    utcnow,
)
from arena.store.passwords import check_password, hash_password

if TYPE_CHECKING:
    import pandas as pd

# pandas and alembic are imported where used: importing the store stays fast for the UI and the CLI.

# Verified against when a name is unknown, so a login takes as long for a wrong name as a wrong password.
_DUMMY_HASH = hash_password("not-a-user")


class StoreError(Exception):
    """Base of the errors the Store raises on purpose."""


class NotFound(StoreError, LookupError):
    """A named annotator, round, model or generation does not exist."""


class AlreadyExists(StoreError, ValueError):
    """A unique name is taken."""


class RoundLocked(StoreError):
    """The round's state forbids the change (config edits after start, votes outside running)."""


class RatingInput(NamedTuple):
    """One side of a rating submission; a plain ``(generation_id, score, criteria, comment)`` works too."""

    generation_id: int
    score: int
    criteria: Sequence[str] = ()
    comment: str = ""


def stable_hash(value: Any) -> str:
    """SHA-256 of canonical JSON: equal configs hash equal whatever their key order."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """The ratings store: annotators, models, rounds, generations, ratings and votes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._reads = sessionmaker(engine, expire_on_commit=False)
        # Same pool; on SQLite its transactions start with BEGIN IMMEDIATE (see engine.py).
        self._writes = sessionmaker(write_engine(engine), expire_on_commit=False)

    @classmethod
    def open(
        cls, url_or_path: str | os.PathLike[str] | sa.URL = DEFAULT_URL, *, upgrade: bool = True
    ) -> Store:
        """Open a store by SQLAlchemy URL or SQLite file path, migrating it to the newest schema."""
        store = cls(create_engine(url_or_path))
        if upgrade:
            try:
                store.upgrade()
            except BaseException:
                store.close()
                raise
        return store

    @property
    def url(self) -> str:
        """The database URL, password hidden (for logs and the UI)."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upgrade(self, revision: str = "head") -> None:
        """Apply pending migrations (idempotent)."""
        from arena.store import migrate

        migrate.upgrade(write_engine(self.engine), revision)

    def current_revision(self) -> str | None:
        """The schema revision of the database; None if it was never migrated."""
        from arena.store import migrate

        return migrate.current(self.engine)

    # -- plumbing ---------------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any exception."""
        with self._writes.begin() as session:
            yield session

    def _insert(self, model: type) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT."""
        name = self.engine.dialect.name
        if name == "postgresql":
            return postgresql.insert(model)
        if name == "sqlite":
            return sqlite.insert(model)
        raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {name}")

    @staticmethod
    def _annotator_id(session: Session, annotator: int | str) -> int:
        column = Annotator.id if isinstance(annotator, int) else Annotator.name
        found = session.scalar(sa.select(Annotator.id).where(column == annotator))
        if found is None:
            raise NotFound(f"no annotator {annotator!r}")
        return found

    @staticmethod
    def _round(session: Session, round_: int | str, *, shared: bool = False) -> Round:
        """The round, row-locked on PostgreSQL (SQLite's BEGIN IMMEDIATE already locks everything).

        Status changes take an exclusive lock; votes take a shared one, so they may run side by side
        but never interleave with a start or close of their round.
        """
        column = Round.id if isinstance(round_, int) else Round.name
        stmt = sa.select(Round).where(column == round_).with_for_update(read=shared)
        found = session.scalar(stmt)
        if found is None:
            raise NotFound(f"no round {round_!r}")
        return found

    # -- annotators -------------------------------------------------------------------------------

    def add_annotator(self, name: str, password: str, role: str = "annotator") -> int:
        """Create an annotator; raises AlreadyExists if the name is taken."""
        name = name.strip()
        if not name:
            raise ValueError("annotator name is empty")
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if not password:
            raise ValueError("password is empty")
        password_hash = hash_password(password)  # slow on purpose: outside the transaction
        stmt = (
            self._insert(Annotator)
            .values(name=name, password_hash=password_hash, role=role, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Annotator.id)
        )
        with self._tx() as s:
            new_id = s.scalar(stmt)
        if new_id is None:
            raise AlreadyExists(f"annotator {name!r} already exists")
        return new_id

    def set_password(self, name: str, password: str) -> None:
        """Replace an annotator's password."""
        if not password:
            raise ValueError("password is empty")
        password_hash = hash_password(password)
        with self._tx() as s:
            done = s.execute(
                sa.update(Annotator).where(Annotator.name == name).values(password_hash=password_hash)
            )
            if done.rowcount == 0:
                raise NotFound(f"no annotator {name!r}")

    def verify_password(self, name: str, password: str) -> bool:
        """Whether ``name`` exists and ``password`` is theirs."""
        with self._reads() as s:
            stored = s.scalar(sa.select(Annotator.password_hash).where(Annotator.name == name))
        ok = check_password(password, stored or _DUMMY_HASH)
        return ok and stored is not None

    def get_annotator(self, annotator: int | str) -> Annotator | None:
        """An annotator by id or name (detached), or None."""
        column = Annotator.id if isinstance(annotator, int) else Annotator.name
        with self._reads() as s:
            return s.scalar(sa.select(Annotator).where(column == annotator))

    def list_annotators(self) -> list[Annotator]:
        """Every annotator, oldest first."""
        with self._reads() as s:
            return list(s.scalars(sa.select(Annotator).order_by(Annotator.id)))

    # -- models -----------------------------------------------------------------------------------

    def upsert_model(
        self,
        name: str,
        *,
        backend: str,
        base_model: str | None = None,
        adapter: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> int:
        """Register a model or update its entry (by name); returns its id."""
        config = dict(config or {})
        values = {
            "backend": backend,
            "base_model": base_model,
            "adapter": adapter,
            "config": config,
            "config_hash": stable_hash(config),
        }
        now = utcnow()
        stmt = self._insert(Model).values(name=name, created_at=now, updated_at=now, **values)
        # Compared through config_hash: PostgreSQL's json type has no equality operator.
        compared = [k for k in values if k != "config"]
        changed = sa.or_(*(getattr(Model, k).is_distinct_from(stmt.excluded[k]) for k in compared))
        # Update (and bump updated_at) only when something changed, so updated_at means "last change".
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={**values, "updated_at": now}, where=changed
        ).returning(Model.id)
        with self._tx() as s:
            model_id = s.scalar(stmt)
            if model_id is None:  # conflict, nothing changed
                model_id = s.scalar(sa.select(Model.id).where(Model.name == name))
        return model_id

    def get_model(self, model: int | str) -> Model | None:
        """A model by id or name (detached), or None."""
        column = Model.id if isinstance(model, int) else Model.name
        with self._reads() as s:
            return s.scalar(sa.select(Model).where(column == model))

    def list_models(self) -> list[Model]:
        """Every registered model, oldest first."""
        with self._reads() as s:
            return list(s.scalars(sa.select(Model).order_by(Model.id)))

    # -- generations ------------------------------------------------------------------------------

    def record_generation(
        self,
        *,
        model_id: int,
        eval_set: str,
        dialog_id: str,
        turn_index: int,
        text: str = "",
        context: str = "replay",
        round_id: int | None = None,
        prompt_hash: str = "",
        tool_calls: list[Any] | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
        ttft_ms: float | None = None,
        total_ms: float | None = None,
        tokens: int | None = None,
        tokens_per_s: float | None = None,
        gt_diff: Any = None,
        similarity: float | None = None,
        tool_name_match: bool | None = None,
        tool_args_match: bool | None = None,
    ) -> int:
        """Insert a generation, or overwrite the one with the same key; returns its id.

        The key is (eval_set, dialog_id, turn_index, model_id, context); a generation made for a
        round always has context ``round:<id>``, so each round keeps its own answers.
        """
        if round_id is not None:
            context = f"round:{round_id}"
        values = {
            "round_id": round_id,
            "prompt_hash": prompt_hash,
            "text": text,
            "tool_calls": tool_calls,
            "finish_reason": finish_reason,
            "error": error,
            "ttft_ms": ttft_ms,
            "total_ms": total_ms,
            "tokens": tokens,
            "tokens_per_s": tokens_per_s,
            "gt_diff": gt_diff,
            "similarity": similarity,
            "tool_name_match": tool_name_match,
            "tool_args_match": tool_args_match,
            "created_at": utcnow(),
        }
        key = {
            "eval_set": eval_set,
            "dialog_id": dialog_id,
            "turn_index": turn_index,
            "model_id": model_id,
            "context": context,
        }
        stmt = (
            self._insert(Generation)
            .values(**key, **values)
            .on_conflict_do_update(index_elements=list(key), set_=values)
            .returning(Generation.id)
        )
        with self._tx() as s:
            return s.execute(stmt).scalar_one()

    def set_generation_metrics(
        self,
        generation_id: int,
        *,
        gt_diff: Any = None,
        similarity: float | None = None,
        tool_name_match: bool | None = None,
        tool_args_match: bool | None = None,
    ) -> None:
        """Attach automatic metrics computed after the generation was recorded."""
        with self._tx() as s:
            done = s.execute(
                sa.update(Generation)
                .where(Generation.id == generation_id)
                .values(
                    gt_diff=gt_diff,
                    similarity=similarity,
                    tool_name_match=tool_name_match,
                    tool_args_match=tool_args_match,
                )
            )
            if done.rowcount == 0:
                raise NotFound(f"no generation {generation_id}")

    def get_generation(self, generation_id: int) -> Generation | None:
        """A generation by id (detached), or None."""
        with self._reads() as s:
            return s.get(Generation, generation_id)

    # -- ratings ----------------------------------------------------------------------------------

    def save_ratings(
        self, annotator: int | str, items: Iterable[RatingInput | tuple[int, int, Sequence[str], str]]
    ) -> list[int]:
        """Save one submission (all sides or none); a repeat by the same annotator updates. Returns ids."""
        rows = [RatingInput(*item) for item in items]
        if not rows:
            return []
        for row in rows:
            if isinstance(row.score, bool) or not isinstance(row.score, int) or not 1 <= row.score <= 5:
                raise ValueError(f"score must be an integer 1-5, not {row.score!r}")
            if isinstance(row.criteria, str) or not all(isinstance(c, str) for c in row.criteria):
                raise ValueError(f"criteria must be a list of strings, not {row.criteria!r}")
        generation_ids = [row.generation_id for row in rows]
        if len(set(generation_ids)) != len(generation_ids):
            raise ValueError(f"a generation appears twice in one submission: {generation_ids}")
        now = utcnow()
        ids: list[int] = []
        with self._tx() as s:
            annotator_id = self._annotator_id(s, annotator)
            known = dict(s.execute(sa.select(Generation.id, Generation.error).where(Generation.id.in_(generation_ids))).all())
            if missing := set(generation_ids) - set(known):
                raise NotFound(f"no generation(s) {sorted(missing)}")
            # A failed answer is excluded from rating: there is nothing to judge.
            if failed := sorted(g for g, error in known.items() if error):
                raise ValueError(f"generation(s) {failed} failed and cannot be rated")
            for row in rows:
                update = {
                    "score": row.score,
                    "criteria": list(row.criteria),
                    "comment": row.comment,
                    "updated_at": now,
                }
                key = {"generation_id": row.generation_id, "annotator_id": annotator_id}
                stmt = (
                    self._insert(Rating)
                    .values(**key, created_at=now, **update)
                    .on_conflict_do_update(index_elements=["generation_id", "annotator_id"], set_=update)
                    .returning(Rating.id)
                )
                ids.append(s.execute(stmt).scalar_one())
        return ids

    # -- rounds and votes -------------------------------------------------------------------------

    def create_round(self, name: str, config: dict[str, Any], *, seed: int = 0) -> int:
        """Create a round in ``draft``; raises AlreadyExists if the name is taken."""
        stmt = (
            self._insert(Round)
            .values(name=name, config=dict(config), seed=seed, status="draft", created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Round.id)
        )
        with self._tx() as s:
            round_id = s.scalar(stmt)
        if round_id is None:
            raise AlreadyExists(f"round {name!r} already exists")
        return round_id

    def update_round_config(
        self, round_: int | str, config: dict[str, Any], *, seed: int | None = None
    ) -> None:
        """Replace a draft round's config (and seed); raises RoundLocked once it has started."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status != "draft":
                raise RoundLocked(f"round {found.name!r} is {found.status}; its config is frozen")
            found.config = dict(config)
            if seed is not None:
                found.seed = seed

    def start_round(self, round_: int | str) -> None:
        """Move a draft round to running, freezing its config (no-op if already running)."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status == "closed":
                raise RoundLocked(f"round {found.name!r} is closed")
            if found.status == "draft":
                found.status, found.started_at = "running", utcnow()

    def close_round(self, round_: int | str) -> None:
        """Stop accepting votes for a round."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status != "closed":
                found.status, found.closed_at = "closed", utcnow()

    def get_round(self, round_: int | str) -> Round | None:
        """A round by id or name (detached), or None."""
        column = Round.id if isinstance(round_, int) else Round.name
        with self._reads() as s:
            return s.scalar(sa.select(Round).where(column == round_))

    def list_rounds(self) -> list[Round]:
        """Every round, oldest first."""
        with self._reads() as s:
            return list(s.scalars(sa.select(Round).order_by(Round.id)))

    def rated_steps(self, annotator: int | str, eval_set: str, context_prefix: str = "replay") -> set[tuple[str, int]]:
        """(dialog_id, turn_index) pairs of ``eval_set`` this annotator has rated, in contexts starting with the prefix."""
        with self._reads() as s:
            annotator_id = self._annotator_id(s, annotator)
            stmt = (
                sa.select(Generation.dialog_id, Generation.turn_index)
                .join(Rating, Rating.generation_id == Generation.id)
                .where(Rating.annotator_id == annotator_id, Generation.eval_set == eval_set,
                       Generation.context.startswith(context_prefix))
                .distinct()
            )
            return {(d, t) for d, t in s.execute(stmt).all()}

    def record_vote(
        self,
        *,
        round_id: int,
        item_key: str,
        generation_a_id: int,
        generation_b_id: int,
        a_position: str,
        annotator: int | str,
        choice: str,
    ) -> bool:
        """Record an A/B vote in a running round; False if this annotator already voted on the item."""
        if choice not in VOTE_CHOICES:
            raise ValueError(f"choice must be one of {VOTE_CHOICES}, not {choice!r}")
        if a_position not in POSITIONS:
            raise ValueError(f"a_position must be one of {POSITIONS}, not {a_position!r}")
        with self._tx() as s:
            found = self._round(s, round_id, shared=True)
            if found.status != "running":
                raise RoundLocked(f"round {found.name!r} is {found.status}, not running")
            annotator_id = self._annotator_id(s, annotator)
            stmt = (
                self._insert(Vote)
                .values(
                    round_id=round_id,
                    item_key=item_key,
                    generation_a_id=generation_a_id,
                    generation_b_id=generation_b_id,
                    a_position=a_position,
                    annotator_id=annotator_id,
                    choice=choice,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["round_id", "item_key", "annotator_id"])
                .returning(Vote.id)
            )
            return s.scalar(stmt) is not None

    def voted_items(self, round_id: int, annotator: int | str) -> set[str]:
        """Item keys of a round this annotator has already voted on (to skip them in the queue)."""
        with self._reads() as s:
            annotator_id = self._annotator_id(s, annotator)
            stmt = sa.select(Vote.item_key).where(Vote.round_id == round_id)
            return set(s.scalars(stmt.where(Vote.annotator_id == annotator_id)))

    # -- frames -----------------------------------------------------------------------------------

    def ratings_frame(self) -> pd.DataFrame:
        """All ratings, one row each, joined with annotator, model and dialog columns."""
        from arena.store import frames

        with self.engine.connect() as conn:
            return frames.ratings_frame(conn)

    def votes_frame(self, round_id: int | None = None) -> pd.DataFrame:
        """All votes (or one round's), joined with model names."""
        from arena.store import frames

        with self.engine.connect() as conn:
            return frames.votes_frame(conn, round_id)

    def generations_frame(self, round_id: int | None = None) -> pd.DataFrame:
        """All generations (or one round's) with text, timings and metrics."""
        from arena.store import frames

        with self.engine.connect() as conn:
            return frames.generations_frame(conn, round_id)
