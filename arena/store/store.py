"""The Store: the only writer of the ratings database. Every write is one short transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from arena.core.answers import Context
from arena.core.style import style_counts
from arena.store.engine import DEFAULT_URL, create_engine, write_engine
from arena.store.models import (
    POSITIONS,
    ROLES,
    VOTE_CHOICES,
    Annotator,
    Generation,
    LoginSession,
    Model,
    Rating,
    RatingRevision,
    Round,
    RoundItem,
    Skip,
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
    """Base of the errors the Store (and the workflows above it) raise on purpose.

    The message is English, for the CLI and logs; ``code`` and ``params``, where the raiser gives them,
    let a page word the same refusal in its own language (arena.web.ui.messages)."""

    def __init__(self, message: str = "", *, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.code, self.params = code, params


def round_state_error(cls: type[StoreError], found: Any, detail: str) -> StoreError:
    """``cls("round 'NAME' <detail>")`` refusing an action in the round's present state, with the code
    and params a page words it by (arena.web.ui.messages)."""
    return cls(f"round {found.name!r} {detail}", code="round_state", name=found.name, status=found.status)


class NotFound(StoreError, LookupError):
    """A named annotator, round, model or generation does not exist."""


class AlreadyExists(StoreError, ValueError):
    """A unique name is taken."""


class RoundLocked(StoreError):
    """The round's state forbids the change (config edits after start, votes outside running)."""


class ItemClosed(StoreError):
    """A vote that the item cannot take: the annotator skipped it, or it has all its judgements."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "skipped" | "quota": the UI words it in the annotator's language


class RatingInput(NamedTuple):
    """One side of a rating submission; a plain ``(generation_id, score, criteria, comment)`` works too."""

    generation_id: int
    score: int
    criteria: Sequence[str] = ()
    comment: str = ""


class RoundItemInput(NamedTuple):
    """One item of a round as written at start: a replay turn, the two models, where A is shown."""

    item_key: str
    ordinal: int
    eval_set: str
    dialog_id: str
    turn_index: int
    model_a_id: int
    model_b_id: int
    a_position: str


class RoundGeneration(NamedTuple):
    """The coordinates and outcome of one stored round answer (no text: for queues and resumes)."""

    id: int
    eval_set: str
    dialog_id: str
    turn_index: int
    model_id: int
    failed: bool


class Judgement(NamedTuple):
    """A vote or a skip on a round item, by whom and when."""

    item_key: str
    annotator: str
    kind: str  # "vote" | "skip"


class QueueState(NamedTuple):
    """A round's queue as one annotator sees it: votes per item key, their own votes and skips."""

    counts: dict[str, int]
    mine: set[str]  # item keys this annotator voted on or skipped
    voted: int  # how many of them are votes
    # Votes per item key and choice ("a", "b", "tie", "both_bad"): what active sampling fits BT on.
    choices: dict[str, dict[str, int]] = {}


class RatedAnswer(NamedTuple):
    """A stored replay answer and one annotator's rating of it (to reopen a rated turn for editing)."""

    model: str
    generation_id: int
    text: str
    tool_calls: list[Any] | None
    error: str | None
    ttft_ms: float | None
    total_ms: float | None
    tokens: int | None
    tokens_per_s: float | None
    rating_id: int
    score: int
    criteria: list[str]
    comment: str
    rated_at: Any  # when the rating was last saved


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str | None) -> str | None:
    """Free text as both databases can hold it: NUL (PostgreSQL refuses it) and lone surrogates (not
    UTF-8; JSON sent by a client or a model server can carry them) become U+FFFD."""
    # Without this, one such character in a comment or a model's answer fails the whole write deep in
    # the driver (a DataError or UnicodeEncodeError instead of a stored answer or a clear message).
    return text if text is None or not _UNSTORABLE.search(text) else _UNSTORABLE.sub("\ufffd", text)


# Limits of one rating: far above what the form produces (4 criteria; a comment may hold a pasted,
# corrected answer, and a page of Korean is ~2,000 characters), low enough that a crafted request
# cannot store megabytes per rating (100,000 Korean characters are 300 KB of UTF-8).
MAX_CRITERIA = 16
MAX_CRITERION_CHARS = 100
MAX_COMMENT_CHARS = 100_000


def _rating_rows(items: Iterable[RatingInput | tuple[int, int, Sequence[str], str]]) -> list[RatingInput]:
    """Checked rows: score an int 1-5 (not a bool), criteria strings (repeats dropped, order kept, capped),
    comment a string (capped); ValueError naming the field otherwise."""
    rows = [RatingInput(*item) for item in items]
    checked = []
    for row in rows:
        if isinstance(row.score, bool) or not isinstance(row.score, int) or not 1 <= row.score <= 5:
            raise ValueError(f"score must be an integer 1-5, not {row.score!r}")
        if isinstance(row.criteria, (str, bytes)) or not all(isinstance(c, str) for c in row.criteria):
            raise ValueError(f"criteria must be a list of strings, not {row.criteria!r:.200}")
        criteria = list(dict.fromkeys(row.criteria))  # a criterion ticked twice counts once
        if len(criteria) > MAX_CRITERIA:
            raise ValueError(f"criteria: {len(criteria)} different ones; at most {MAX_CRITERIA}")
        if any(len(c) > MAX_CRITERION_CHARS for c in criteria):
            raise ValueError(f"criteria: a name longer than {MAX_CRITERION_CHARS} characters")
        comment = "" if row.comment is None else row.comment
        if not isinstance(comment, str):
            raise ValueError(f"comment must be text, not {type(comment).__name__}")
        if len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment: {len(comment):,} characters; at most {MAX_COMMENT_CHARS:,}")
        checked.append(row._replace(criteria=criteria, comment=comment))
    generation_ids = [row.generation_id for row in checked]
    if len(set(generation_ids)) != len(generation_ids):
        raise ValueError(f"a generation appears twice in one submission: {generation_ids}")
    return [
        row._replace(criteria=[storable_text(c) for c in row.criteria], comment=storable_text(row.comment))
        for row in checked
    ]


def stable_hash(value: Any) -> str:
    """SHA-256 of canonical JSON: equal configs hash equal whatever their key order."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# Login throttle per account (kept in the store, so every arena process counts the same failures).
LOGIN_FAILURE_LIMIT = 5  # wrong passwords in a row before the account is locked
LOGIN_LOCK_BASE_S = 30.0  # the first lock; each further wrong password doubles it ...
LOGIN_LOCK_MAX_S = 900.0  # ... up to 15 minutes
SESSION_TOUCH_EVERY = dt.timedelta(minutes=1)


class LoginResult(NamedTuple):
    """How a login attempt ended: ``reason`` is ok, wrong, locked, disabled (or throttled, by the server)."""

    ok: bool
    reason: str
    retry_after_s: float = 0.0  # locked: seconds until the next attempt is checked
    locked_now: bool = False  # this attempt locked the account (one log line per lockout)
    failures: int = 0  # wrong passwords in a row so far


def _login_refusal(row: Any, now: dt.datetime) -> LoginResult | None:
    """Why an account's login is refused before its password is checked, if it is."""
    if row.disabled:
        return LoginResult(False, "disabled")
    if row.locked_until is not None and row.locked_until > now:
        return LoginResult(False, "locked", (row.locked_until - now).total_seconds(), False, row.failed_logins)
    return None


def _token_hash(token: str) -> str:
    """What the sessions table keeps of a session token: a stolen database logs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The ratings store: annotators, models, rounds, generations, ratings and votes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._reads = sessionmaker(engine, expire_on_commit=False)
        # Same pool; on SQLite its transactions start with BEGIN IMMEDIATE (see engine.py).
        self._writes = sessionmaker(write_engine(engine), expire_on_commit=False)
        # SQLite takes one writer at a time. Threads of this process that wait for its lock sleep in
        # SQLite's busy handler (1, 2, 5, 10 ... 100 ms, and a newcomer may take the lock first), which
        # under load put hundreds of ms on a few submissions. They queue here instead and get the lock
        # as soon as it is free; the busy timeout still covers writers in other processes (the CLI).
        self._write_turn: threading.RLock | None = threading.RLock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, url_or_path: str | os.PathLike[str] | sa.URL = DEFAULT_URL, *, upgrade: bool = True) -> Store:
        """Open a store by SQLAlchemy URL or SQLite file path, migrating it to the newest schema.

        Raises StoreError for a file that is not a database and for a database at a schema revision this
        arena does not know (made by a newer arena: migrating it, or reading it, would go wrong)."""
        store = cls(create_engine(url_or_path))
        try:
            store._check_schema()
            if upgrade:
                store.upgrade()
        except BaseException:
            store.close()
            raise
        return store

    def _check_schema(self) -> None:
        from arena.store import migrate

        shown = self.engine.url.render_as_string(hide_password=True)
        try:
            revision = self.current_revision()
        except sa.exc.DatabaseError as exc:  # SQLite: "file is not a database"; PostgreSQL: cannot connect
            raise StoreError(f"{shown}: cannot open the database: {str(exc.orig).strip()}") from None
        if revision is not None and revision not in migrate.revisions():
            raise StoreError(
                f"{shown}: the database is at schema revision {revision}, which this arena does not "
                f"know (its newest is {migrate.head()}): it was written by a newer arena; "
                "use that version (a downgrade is not possible from here)"
            )

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
        if self._write_turn is None:
            with self._writes.begin() as session:
                yield session
            return
        with self._write_turn, self._writes.begin() as session:
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
            raise NotFound(f"no round {round_!r}", code="no_round", name=round_)
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
        """Replace an annotator's password; their sessions end and their login lock is lifted."""
        if not password:
            raise ValueError("password is empty")
        password_hash = hash_password(password)
        with self._tx() as s:
            annotator_id = self._annotator_id(s, name)
            s.execute(
                sa.update(Annotator)
                .where(Annotator.id == annotator_id)
                .values(password_hash=password_hash, failed_logins=0, locked_until=None)
            )
            s.execute(sa.delete(LoginSession).where(LoginSession.annotator_id == annotator_id))

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable an account (it cannot log in, its sessions end; its ratings stay) or enable it again."""
        with self._tx() as s:
            annotator_id = self._annotator_id(s, name)
            values: dict[str, Any] = {"disabled": disabled}
            if not disabled:  # a researcher re-enabling an account also lifts a login lock
                values.update(failed_logins=0, locked_until=None)
            s.execute(sa.update(Annotator).where(Annotator.id == annotator_id).values(**values))
            if disabled:
                s.execute(sa.delete(LoginSession).where(LoginSession.annotator_id == annotator_id))

    def verify_password(self, name: str, password: str) -> bool:
        """Whether ``name`` is an enabled account and ``password`` is theirs (no throttling: see login)."""
        with self._reads() as s:
            row = s.execute(
                sa.select(Annotator.password_hash, Annotator.disabled).where(Annotator.name == name)
            ).first()
        ok = check_password(password, row.password_hash if row else _DUMMY_HASH)
        return ok and row is not None and not row.disabled

    def login(self, name: str, password: str, *, now: dt.datetime | None = None) -> LoginResult:
        """Check a password under the account's throttle: from LOGIN_FAILURE_LIMIT wrong ones in a row on,
        the account is locked for a doubling time, and attempts while it is locked are refused unchecked."""
        now = now or utcnow()
        stmt = sa.select(
            Annotator.id, Annotator.password_hash, Annotator.disabled, Annotator.failed_logins, Annotator.locked_until
        ).where(Annotator.name == name)
        with self._reads() as s:  # a refusal costs one read, not a write: no lock for a guesser to hog
            row = s.execute(stmt).first()
        if row is None:
            check_password(password, _DUMMY_HASH)  # as slow as a wrong password: names stay secret
            return LoginResult(False, "wrong")
        if (refused := _login_refusal(row, now)) is not None:
            return refused
        with self._tx() as s:
            # Counted as wrong before the (slow) check, under the same lock as the test above (repeated:
            # a parallel attempt may have counted first), so a burst of parallel guesses, from any number
            # of arena processes, gets as many checks as the limit allows. A right password resets it.
            row = s.execute(stmt.with_for_update()).first()
            if row is None or (refused := _login_refusal(row, now)) is not None:
                return refused or LoginResult(False, "wrong")
            failures = row.failed_logins + 1
            lock_s = 0.0
            if failures >= LOGIN_FAILURE_LIMIT:
                lock_s = min(LOGIN_LOCK_MAX_S, LOGIN_LOCK_BASE_S * 2 ** min(failures - LOGIN_FAILURE_LIMIT, 16))
            s.execute(
                sa.update(Annotator)
                .where(Annotator.id == row.id)
                .values(failed_logins=failures, locked_until=now + dt.timedelta(seconds=lock_s) if lock_s else None)
            )
        if not check_password(password, row.password_hash):  # outside the transaction: ~70 ms
            return LoginResult(False, "wrong", lock_s, lock_s > 0, failures)
        with self._tx() as s:
            s.execute(sa.update(Annotator).where(Annotator.id == row.id).values(failed_logins=0, locked_until=None))
        return LoginResult(True, "ok")

    def create_session(self, name: str, *, purge_idle: dt.timedelta | None = None) -> str:
        """Start a login session for an account and return its token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._tx() as s:
            annotator_id = self._annotator_id(s, name)
            if purge_idle is not None:  # logins are rare: a good time to drop sessions nobody will resume
                s.execute(sa.delete(LoginSession).where(LoginSession.last_seen_at < now - purge_idle))
            s.execute(
                sa.insert(LoginSession).values(
                    token_hash=_token_hash(token), annotator_id=annotator_id, created_at=now, last_seen_at=now
                )
            )
        return token

    def session_user(self, token: str, *, idle: dt.timedelta, now: dt.datetime | None = None) -> str | None:
        """The account name of a session token; None if unknown, idle longer than ``idle`` or disabled."""
        now = now or utcnow()
        stmt = (
            sa.select(LoginSession.id, LoginSession.last_seen_at, Annotator.name, Annotator.disabled)
            .join(Annotator, Annotator.id == LoginSession.annotator_id)
            .where(LoginSession.token_hash == _token_hash(token))
        )
        with self._reads() as s:
            row = s.execute(stmt).first()
        if row is None or row.disabled:
            return None
        if now - row.last_seen_at > idle:
            with self._tx() as s:
                s.execute(sa.delete(LoginSession).where(LoginSession.id == row.id))
            return None
        # At most one write a minute per session (sooner only for an idle time under four minutes).
        if now - row.last_seen_at > min(SESSION_TOUCH_EVERY, idle / 4):
            with self._tx() as s:
                s.execute(sa.update(LoginSession).where(LoginSession.id == row.id).values(last_seen_at=now))
        return row.name

    def end_session(self, token: str) -> bool:
        """Log one session out; False if it was not (or no longer) there."""
        with self._tx() as s:
            return s.execute(sa.delete(LoginSession).where(LoginSession.token_hash == _token_hash(token))).rowcount > 0

    def end_sessions(self, annotator: int | str) -> int:
        """Log an account out everywhere; returns how many sessions ended."""
        with self._tx() as s:
            annotator_id = self._annotator_id(s, annotator)
            return s.execute(sa.delete(LoginSession).where(LoginSession.annotator_id == annotator_id)).rowcount

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
        context: Context | str = "replay:anonymous",
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
        keep_success: bool = False,
    ) -> int:
        """Store an answer for a key and return its id: a new row, or the key's latest row rewritten.

        The key is (eval_set, dialog_id, turn_index, model_id, context); a generation made for a
        round always has context ``round:<id>``, so each round keeps its own answers. A row that was
        rated or voted on is never rewritten: the answer becomes the key's next ``revision``, so a
        rating always points at the text the annotator saw. With ``keep_success`` only a failed row is
        replaced: a successful one may already be judged, so a second writer (two pre-generation runs
        at once) leaves it as it is.
        """
        context = str(Context.round(round_id) if round_id is not None else context)
        style = style_counts(text)
        values = {
            "round_id": round_id,
            "prompt_hash": prompt_hash,
            "text": storable_text(text),
            "tool_calls": tool_calls,
            "finish_reason": finish_reason,
            "error": storable_text(error),
            "ttft_ms": ttft_ms,
            "total_ms": total_ms,
            "tokens": tokens,
            "tokens_per_s": tokens_per_s,
            "gt_diff": gt_diff,
            "similarity": similarity,
            "tool_name_match": tool_name_match,
            "tool_args_match": tool_args_match,
            **{f"style_{name}": value for name, value in style._asdict().items()},
            "created_at": utcnow(),
        }
        key = {
            "eval_set": eval_set,
            "dialog_id": dialog_id,
            "turn_index": turn_index,
            "model_id": model_id,
            "context": context,
        }
        with self._tx() as s:
            # FOR UPDATE (PostgreSQL): a rating being inserted holds a key-share lock on the row it
            # rates, so it either commits before this check sees it or waits until this write is done.
            latest = s.execute(
                sa.select(Generation.id, Generation.revision, Generation.error)
                .filter_by(**key)
                .order_by(Generation.revision.desc())
                .limit(1)
                .with_for_update()
            ).first()
            revision = 0
            if latest is not None:
                if keep_success and latest.error is None:
                    return latest.id
                revision = latest.revision + 1 if self._judged(s, latest.id) else latest.revision
            stmt = (
                self._insert(Generation)
                .values(**key, revision=revision, **values)
                .on_conflict_do_update(index_elements=[*key, "revision"], set_=values)
                .returning(Generation.id)
            )
            return s.execute(stmt).scalar_one()

    @staticmethod
    def _judged(session: Session, generation_id: int) -> bool:
        """Whether any rating or vote points at the generation."""
        rated = sa.select(Rating.id).where(Rating.generation_id == generation_id)
        voted = sa.select(Vote.id).where(
            sa.or_(Vote.generation_a_id == generation_id, Vote.generation_b_id == generation_id)
        )
        return session.scalar(sa.select(sa.or_(sa.exists(rated), sa.exists(voted)))) or False

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
        rows = _rating_rows(items)
        if not rows:
            return []
        with self._tx() as s:
            return self._save_ratings(s, self._annotator_id(s, annotator), rows)

    @staticmethod
    def _check_generations(session: Session, generation_ids: Sequence[int]) -> None:
        known = dict(
            session.execute(sa.select(Generation.id, Generation.error).where(Generation.id.in_(generation_ids))).all()
        )
        if missing := set(generation_ids) - set(known):
            raise NotFound(f"no generation(s) {sorted(missing)}")
        # A failed answer is excluded from rating and voting: there is nothing to judge.
        if failed := sorted(g for g, error in known.items() if error):
            raise ValueError(f"generation(s) {failed} failed and cannot be judged")

    def _save_ratings(self, s: Session, annotator_id: int, rows: list[RatingInput]) -> list[int]:
        """Insert or edit the annotator's ratings; an edited rating's previous version is kept."""
        self._check_generations(s, [row.generation_id for row in rows])
        now = utcnow()
        ids: list[int] = []
        for row in rows:
            update = {
                "score": row.score,
                "criteria": list(row.criteria),
                "comment": row.comment,
                "updated_at": now,
            }
            key = {"generation_id": row.generation_id, "annotator_id": annotator_id}
            old = s.execute(
                sa.select(Rating.id, Rating.score, Rating.criteria, Rating.comment, Rating.updated_at)
                .filter_by(**key)
                .with_for_update()
            ).first()
            if old is not None and (old.score, list(old.criteria), old.comment) != (
                row.score,
                update["criteria"],
                row.comment,
            ):
                s.execute(
                    sa.insert(RatingRevision).values(
                        rating_id=old.id,
                        score=old.score,
                        criteria=old.criteria,
                        comment=old.comment,
                        rated_at=old.updated_at,
                        replaced_at=now,
                    )
                )
            stmt = (
                self._insert(Rating)
                .values(**key, created_at=now, **update)
                .on_conflict_do_update(index_elements=["generation_id", "annotator_id"], set_=update)
                .returning(Rating.id)
            )
            ids.append(s.execute(stmt).scalar_one())
        return ids

    def rating_history(self, rating_id: int) -> list[RatingRevision]:
        """Earlier versions of a rating, oldest first (detached)."""
        with self._reads() as s:
            return list(
                s.scalars(
                    sa.select(RatingRevision).where(RatingRevision.rating_id == rating_id).order_by(RatingRevision.id)
                )
            )

    # -- rounds and votes -------------------------------------------------------------------------

    def create_round(self, name: str, config: dict[str, Any], *, seed: int = 0) -> int:
        """Create a round in ``draft``; raises AlreadyExists if the name is taken."""
        stmt = (
            self._insert(Round)
            .values(
                name=name,
                config=dict(config),
                seed=seed,
                secret=secrets.token_hex(16),
                status="draft",
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Round.id)
        )
        with self._tx() as s:
            round_id = s.scalar(stmt)
        if round_id is None:
            raise AlreadyExists(f"round {name!r} already exists")
        return round_id

    def update_round_config(self, round_: int | str, config: dict[str, Any], *, seed: int | None = None) -> None:
        """Replace a draft round's config (and seed); raises RoundLocked once it has started."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status != "draft":
                raise round_state_error(RoundLocked, found, f"is {found.status}; its config is frozen")
            found.config = dict(config)
            if seed is not None:
                found.seed = seed

    def start_round(self, round_: int | str, items: Sequence[RoundItemInput] | None = None) -> None:
        """Move a draft round to running, freezing its config and writing its items in the same
        transaction (a no-op, items ignored, if it is already running)."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status == "closed":
                raise round_state_error(RoundLocked, found, "is closed")
            if found.status == "draft":
                found.status, found.started_at = "running", utcnow()
                if items:
                    s.execute(sa.insert(RoundItem), [{"round_id": found.id, **item._asdict()} for item in items])

    def close_round(self, round_: int | str) -> None:
        """Stop accepting votes for a round."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status != "closed":
                found.status, found.closed_at = "closed", utcnow()

    def reopen_round(self, round_: int | str) -> str:
        """Put a closed round back to where it was before closing (running, or draft if it never
        started), items, answers and votes untouched; returns the new status. RoundLocked if not closed."""
        with self._tx() as s:
            found = self._round(s, round_)
            if found.status != "closed":
                raise round_state_error(RoundLocked, found, f"is {found.status}, not closed")
            found.status = "running" if found.started_at is not None else "draft"
            found.closed_at = None
            return found.status

    def get_round(self, round_: int | str) -> Round | None:
        """A round by id or name (detached), or None."""
        column = Round.id if isinstance(round_, int) else Round.name
        with self._reads() as s:
            return s.scalar(sa.select(Round).where(column == round_))

    def list_rounds(self) -> list[Round]:
        """Every round, oldest first."""
        with self._reads() as s:
            return list(s.scalars(sa.select(Round).order_by(Round.id)))

    def rated_steps(self, annotator: int | str, eval_set: str, context: Context | str) -> set[tuple[str, int]]:
        """(dialog_id, turn_index) pairs of ``eval_set`` this annotator has rated among the answers of ``context``."""
        with self._reads() as s:
            annotator_id = self._annotator_id(s, annotator)
            stmt = (
                sa.select(Generation.dialog_id, Generation.turn_index)
                .join(Rating, Rating.generation_id == Generation.id)
                .where(
                    Rating.annotator_id == annotator_id,
                    Generation.eval_set == eval_set,
                    Generation.context == str(context),
                )
                .distinct()
            )
            return {(d, t) for d, t in s.execute(stmt).all()}

    def rated_answers(
        self, annotator: int | str, *, eval_set: str, dialog_id: str, turn_index: int, context: Context | str
    ) -> list[RatedAnswer]:
        """The answers to one turn (in one context) that this annotator rated in their latest submission
        there, with their rating, in the order the sides were shown; empty if they never rated it."""
        g, r = Generation, Rating
        column = Annotator.id if isinstance(annotator, int) else Annotator.name
        stmt = (
            sa.select(
                Model.name,
                g.id,
                g.text,
                g.tool_calls,
                g.error,
                g.ttft_ms,
                g.total_ms,
                g.tokens,
                g.tokens_per_s,
                r.id,
                r.score,
                r.criteria,
                r.comment,
                r.created_at,
                r.updated_at,
            )
            .join(r, r.generation_id == g.id)
            .join(Model, Model.id == g.model_id)
            .join(Annotator, Annotator.id == r.annotator_id)
            .where(
                column == annotator,
                g.eval_set == eval_set,
                g.dialog_id == dialog_id,
                g.turn_index == turn_index,
                g.context == str(context),
            )
            .order_by(r.id)
        )
        with self._reads() as s:
            rows = s.execute(stmt).all()
        if not rows:
            return []
        # One submission writes all its sides with one created_at (an edit keeps it); after a regeneration
        # the newest submission is the one to show, not a mix with the answers it replaced.
        newest = max(row[13] for row in rows)
        return [RatedAnswer(*row[:13], rated_at=row[14]) for row in rows if row[13] == newest]

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
        ratings: Iterable[RatingInput | tuple[int, int, Sequence[str], str]] = (),
    ) -> bool:
        """Record an A/B vote in a running round, with the annotator's 1-5 ratings of the answers in
        the same transaction; False (nothing written) if this annotator already voted on the item."""
        if choice not in VOTE_CHOICES:
            raise ValueError(f"choice must be one of {VOTE_CHOICES}, not {choice!r}")
        if a_position not in POSITIONS:
            raise ValueError(f"a_position must be one of {POSITIONS}, not {a_position!r}")
        rows = _rating_rows(ratings)
        with self._tx() as s:
            found = self._round(s, round_id, shared=True)
            if found.status != "running":
                raise round_state_error(RoundLocked, found, f"is {found.status}, not running")
            annotator_id = self._annotator_id(s, annotator)
            self._check_generations(s, [generation_a_id, generation_b_id])
            self._lock_item(s, round_id, item_key)
            mine = sa.and_(Vote.round_id == round_id, Vote.item_key == item_key, Vote.annotator_id == annotator_id)
            if s.scalar(sa.select(Vote.id).where(mine)) is not None:
                return False  # the first vote stands, and so do the ratings given with it
            if (
                s.scalar(
                    sa.select(Skip.id).where(
                        Skip.round_id == round_id, Skip.item_key == item_key, Skip.annotator_id == annotator_id
                    )
                )
                is not None
            ):
                raise ItemClosed(f"annotator {annotator!r} skipped item {item_key!r}", "skipped")
            quota = (found.config or {}).get("judgements")
            votes = s.scalar(
                sa.select(sa.func.count()).select_from(Vote).where(Vote.round_id == round_id, Vote.item_key == item_key)
            )
            if quota is not None and votes >= int(quota):
                raise ItemClosed(f"item {item_key!r} already has its {quota} judgement(s)", "quota")
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
            if s.scalar(stmt) is None:
                return False  # the first vote stands, and so do the ratings given with it
            if rows:
                self._save_ratings(s, annotator_id, rows)
            return True

    @staticmethod
    def _lock_item(session: Session, round_id: int, item_key: str) -> None:
        """Serialise votes and skips of one item (PostgreSQL row lock; SQLite's writer lock already does).

        Votes share the round's lock, so without this two annotators could both take an item's last
        judgement, or one annotator vote in one tab on the item they skipped in another.
        """
        session.execute(
            sa.select(RoundItem.id)
            .where(RoundItem.round_id == round_id, RoundItem.item_key == item_key)
            .with_for_update()
        )

    def voted_items(self, round_id: int, annotator: int | str) -> set[str]:
        """Item keys of a round this annotator has already voted on (to skip them in the queue)."""
        with self._reads() as s:
            annotator_id = self._annotator_id(s, annotator)
            stmt = sa.select(Vote.item_key).where(Vote.round_id == round_id)
            return set(s.scalars(stmt.where(Vote.annotator_id == annotator_id)))

    def record_skip(self, *, round_id: int, item_key: str, annotator: int | str, reason: str = "") -> bool:
        """Record that an annotator passed on a round item; False if they had already voted or skipped it."""
        with self._tx() as s:
            found = self._round(s, round_id, shared=True)
            if found.status != "running":
                raise round_state_error(RoundLocked, found, f"is {found.status}, not running")
            annotator_id = self._annotator_id(s, annotator)
            self._lock_item(s, round_id, item_key)
            voted = s.scalar(
                sa.select(Vote.id).where(
                    Vote.round_id == round_id, Vote.item_key == item_key, Vote.annotator_id == annotator_id
                )
            )
            if voted is not None:
                return False
            stmt = (
                self._insert(Skip)
                .values(
                    round_id=round_id,
                    item_key=item_key,
                    annotator_id=annotator_id,
                    reason=storable_text(reason),
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["round_id", "item_key", "annotator_id"])
                .returning(Skip.id)
            )
            return s.scalar(stmt) is not None

    def round_items(self, round_: int | str) -> list[sa.Row]:
        """The items written when the round started, in their original order (empty for a draft);
        rows with RoundItem's columns as attributes."""
        # Plain rows, not ORM objects: the blind queue reads every item of the round on each request,
        # and building hundreds of ORM instances cost 5x the query (8 ms vs 1.7 ms at 600 items).
        with self._reads() as s:
            round_id = self._round_id(s, round_)
            return list(
                s.execute(
                    sa.select(*RoundItem.__table__.c).where(RoundItem.round_id == round_id).order_by(RoundItem.ordinal)
                ).all()
            )

    def round_generations(self, round_id: int) -> list[RoundGeneration]:
        """Every stored answer of a round: coordinates, model and whether it failed (no text)."""
        g = Generation
        stmt = (
            sa.select(g.id, g.eval_set, g.dialog_id, g.turn_index, g.model_id, g.error)
            .where(g.round_id == round_id)
            .order_by(g.id)
        )
        with self._reads() as s:
            return [RoundGeneration(i, e, d, t, m, bool(err)) for i, e, d, t, m, err in s.execute(stmt).all()]

    def round_judgements(self, round_id: int) -> list[Judgement]:
        """Every vote and skip of a round, oldest first within each kind."""
        votes = (
            sa.select(Vote.item_key, Annotator.name)
            .join(Annotator, Vote.annotator_id == Annotator.id)
            .where(Vote.round_id == round_id)
            .order_by(Vote.id)
        )
        skips = (
            sa.select(Skip.item_key, Annotator.name)
            .join(Annotator, Skip.annotator_id == Annotator.id)
            .where(Skip.round_id == round_id)
            .order_by(Skip.id)
        )
        with self._reads() as s:
            return [Judgement(k, a, "vote") for k, a in s.execute(votes).all()] + [
                Judgement(k, a, "skip") for k, a in s.execute(skips).all()
            ]

    def round_queue_state(self, round_id: int, annotator: str) -> QueueState:
        """Votes per item (and per choice) of a round, and what ``annotator`` has voted on or skipped there.

        What the blind queue needs on every request, aggregated in the database: reading every
        judgement of the round instead grew with the round (20,000 rows at 100 annotators x 200 items).
        """
        counts = (
            sa.select(Vote.item_key, Vote.choice, sa.func.count())
            .where(Vote.round_id == round_id)
            .group_by(Vote.item_key, Vote.choice)
        )
        with self._reads() as s:
            annotator_id = s.scalar(sa.select(Annotator.id).where(Annotator.name == annotator))
            voted = set(
                s.scalars(sa.select(Vote.item_key).where(Vote.round_id == round_id, Vote.annotator_id == annotator_id))
            )
            skipped = set(
                s.scalars(sa.select(Skip.item_key).where(Skip.round_id == round_id, Skip.annotator_id == annotator_id))
            )
            choices: dict[str, dict[str, int]] = {}
            for key, choice, n in s.execute(counts).all():
                choices.setdefault(key, {})[choice] = n
            totals = {k: sum(c.values()) for k, c in choices.items()}
            return QueueState(totals, voted | skipped, len(voted), choices)

    @staticmethod
    def _round_id(session: Session, round_: int | str) -> int:
        column = Round.id if isinstance(round_, int) else Round.name
        found = session.scalar(sa.select(Round.id).where(column == round_))
        if found is None:
            raise NotFound(f"no round {round_!r}", code="no_round", name=round_)
        return found

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

    def skips_frame(self, round_id: int | None = None) -> pd.DataFrame:
        """All skips (or one round's), with the annotator's name and the reason."""
        from arena.store import frames

        with self.engine.connect() as conn:
            return frames.skips_frame(conn, round_id)

    def generations_frame(self, round_id: int | None = None) -> pd.DataFrame:
        """All generations (or one round's) with text, timings and metrics."""
        from arena.store import frames

        with self.engine.connect() as conn:
            return frames.generations_frame(conn, round_id)

    # -- recall queries ---------------------------------------------------------------------------

    def save_recall_query(
        self,
        *,
        model_id: int,
        eval_set: str,
        item_id: str,
        prompt_hash: str,
        query: str | None,
        status: str,
        tool_calls: list[Any] | None = None,
        error: str | None = None,
    ) -> int:
        """Store (or replace) a model's query for one retrieval item and prompt hash; returns the row id.

        A failed request (status ``error``) only replaces another failure: when two runs race, an answer
        that arrived stands.
        """
        from arena.store.models import RECALL_STATUSES, RecallQuery

        if status not in RECALL_STATUSES:
            raise ValueError(f"status must be one of {RECALL_STATUSES}, not {status!r}")
        key = {"model_id": model_id, "eval_set": eval_set, "item_id": item_id, "prompt_hash": prompt_hash}
        values = {"query": query, "status": status, "tool_calls": tool_calls, "error": error, "created_at": utcnow()}
        stmt = (
            self._insert(RecallQuery)
            .values(**key, **values)
            .on_conflict_do_update(
                index_elements=list(key),
                set_=values,
                where=RecallQuery.status == "error" if status == "error" else None,
            )
            .returning(RecallQuery.id)
        )
        with self._tx() as s:
            found = s.execute(stmt).scalar_one_or_none()
            if found is None:  # kept: the stored row is an answer, this one a failure
                found = s.scalar(sa.select(RecallQuery.id).filter_by(**key))
            return found

    def get_recall_queries(self, model: int | str, eval_set: str) -> dict[tuple[str, str], RecallQueryRow]:
        """A model's stored queries on an eval set by (item id, prompt hash); empty for an unknown model."""
        from arena.store.models import RecallQuery

        r = RecallQuery
        column = Model.id if isinstance(model, int) else Model.name
        stmt = (
            sa.select(r.item_id, r.prompt_hash, r.query, r.status, r.tool_calls, r.error, r.created_at)
            .join(Model, Model.id == r.model_id)
            .where(column == model, r.eval_set == eval_set)
        )
        with self._reads() as s:
            return {(item, prompt): RecallQueryRow(*rest) for item, prompt, *rest in s.execute(stmt).all()}


class RecallQueryRow(NamedTuple):
    """One stored recall query: the query (None when there is none), its status, the raw calls, why not."""

    query: str | None
    status: str
    tool_calls: list[Any] | None
    error: str | None
    created_at: Any
