"""Database fixtures: a throwaway PostgreSQL server (pgserver) and a fresh empty database per test.

``pg_url`` starts one server for the whole session, only when a test asks for PostgreSQL. It listens
on a Unix socket in a temp dir (no TCP port at all), trusts local connections, and is deleted at the
end. If it cannot start the tests fail, loudly: a skipped PostgreSQL run would look like a passing one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

DB_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _start_server(pgdata: Path):  # -> pgserver.PostgresServer
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (true under root in a container); harmless.
        warnings.simplefilter("ignore")
        import pgserver

    # "stop": cleanup() (or pgserver's atexit hook, if pytest dies first) stops the server.
    return pgserver.get_server(pgdata, cleanup_mode="stop")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL (psycopg 3) of the ``postgres`` database on a throwaway local server."""
    root = Path(tempfile.mkdtemp(prefix="arena-pg-"))
    try:
        server = _start_server(root / "data")
    except Exception as exc:  # noqa: BLE001 - any failure to start must name itself clearly
        log = root / "data" / "log"
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no server log)"
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(
            f"could not start a throwaway PostgreSQL with pgserver: {exc!r}\n{detail}\n"
            "PostgreSQL tests need the 'pgserver' package (pip install -e '.[postgres]').",
            pytrace=False,
        )
    url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    _no_fsync(url)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _no_fsync(url: sa.URL) -> None:
    """Turn off fsync: a throwaway server needs no durability, and CREATE DATABASE gets ~20x faster.

    The crash tests kill the client, never the server, so they still test what they claim.
    """
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.exec_driver_sql(f"ALTER SYSTEM SET {setting} = off")
            conn.exec_driver_sql("SELECT pg_reload_conf()")
    finally:
        engine.dispose()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"arena_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            # FORCE: a test that failed mid-way may still hold connections.
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty database: SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ratings.db'}"
    return request.getfixturevalue("pg_database")
