"""Engine creation: URL parsing, SQLite in WAL mode with foreign keys and BEGIN IMMEDIATE writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

DEFAULT_URL = "sqlite:///ratings.db"

# How long a SQLite writer waits for another writer's lock before failing with "database is locked".
BUSY_TIMEOUT_S = 30.0

# Execution option read by the SQLite "begin" hook; the Store's write engine sets it to IMMEDIATE.
BEGIN_MODE_OPTION = "arena_sqlite_begin"


def to_url(url_or_path: str | os.PathLike[str] | sa.URL) -> sa.URL:
    """A SQLAlchemy URL from a URL string, a URL, or a bare file path (which means SQLite)."""
    if isinstance(url_or_path, sa.URL):
        url = url_or_path
    else:
        text = os.fspath(url_or_path)
        if "://" not in text:
            return sa.URL.create("sqlite", database=str(Path(text).expanduser()))
        url = sa.make_url(text)
    # A bare postgresql:// would pick psycopg2, which the arena does not install; psycopg 3 is the driver.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _dumps(value: Any) -> str:
    # Keep Korean readable when someone opens the database with the sqlite3 or psql shell.
    return json.dumps(value, ensure_ascii=False)


def create_engine(url_or_path: str | os.PathLike[str] | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine for the store; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    url = to_url(url_or_path)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, json_serializer=_dumps, **kwargs)
    return _sqlite_engine(url, **kwargs)


def _sqlite_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
    if memory:
        # One shared connection, else every pooled connection would see its own empty database.
        kwargs.setdefault("poolclass", sa.StaticPool)
        connect_args.setdefault("check_same_thread", False)
    engine = sa.create_engine(url, connect_args=connect_args, json_serializer=_dumps, **kwargs)

    # The documented SQLAlchemy recipe: stop sqlite3 from issuing its own (deferred, late) BEGIN,
    # then issue ours. A deferred transaction that reads before it writes cannot wait for the write
    # lock (SQLite answers "database is locked" at once, busy timeout or not); BEGIN IMMEDIATE takes
    # the lock up front, where the busy timeout applies.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # FULL: a committed rating survives power loss too, not only a crash of the process.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"{BEGIN_MODE_OPTION}={mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def write_engine(engine: sa.Engine) -> sa.Engine:
    """The same engine (same pool) with writes starting as BEGIN IMMEDIATE on SQLite."""
    return engine.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
