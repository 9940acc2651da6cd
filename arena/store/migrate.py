"""Schema migrations (alembic, configured in code): upgrade, downgrade, current and head revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from arena.store.models import Base

SCRIPT_LOCATION = "arena.store:migrations"

# Any constant will do: it only has to be the same in every process that migrates this database.
_PG_MIGRATION_LOCK = 0x61726E61  # "arna"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An alembic Config without an ini file; env.py migrates ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head() -> str:
    """The newest revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at, None for a blank database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _locked(conn: sa.Connection) -> None:
    # SQLite: the caller's BEGIN IMMEDIATE already serialises migrations. PostgreSQL: two processes
    # starting at once would both try CREATE TABLE; an advisory lock makes the second wait, then no-op.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


@contextmanager
def _migrating(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction for all steps; on SQLite with foreign keys off while tables are rebuilt."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
        # SQLite changes a constraint only by rebuilding the table, and dropping a table that other
        # rows point at fails while foreign keys are enforced. The pragma is a no-op inside a
        # transaction, so it is set before BEGIN; the check below still refuses a dangling row.
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                _locked(conn)
                yield conn
                if raw is not None and (bad := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                    raise RuntimeError(f"migration left rows pointing at missing rows: {bad[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate up to ``revision`` in one transaction (all steps or none)."""
    with _migrating(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` drops everything) in one transaction."""
    with _migrating(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def schema_diff(engine: sa.Engine) -> list[tuple]:
    """Differences between the database and the models (empty when the migrations are complete)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))
