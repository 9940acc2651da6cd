"""What every subcommand shares: the ``--db`` argument, and the errors ``arena.cli.main`` reports.

Exit codes, the same for every command: 0 done; 1 the command ran and found problems or an operation
outside the arena failed (invalid eval-set files, a model server that did not start, an unreachable
arena); 2 a user's mistake (a bad argument, config or name), reported before anything was changed.
Every message is one line ``arena <command>: <what is wrong and what was expected>`` on stderr.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from arena.store import DEFAULT_URL, to_url


class CommandError(Exception):
    """A failure ``arena.cli.main`` prints as ``arena <command>: <message>`` (no traceback)."""

    exit_code = 1


class UserError(CommandError):
    """The user's mistake: a bad argument, config file, name or path. Exit code 2."""

    exit_code = 2


class OperationFailed(CommandError):
    """The request was fine but something outside failed (a server, a model, a check). Exit code 1."""

    exit_code = 1


def db_location(text: str) -> str:
    """``--db`` as given, once it can be a database: a SQLite file needs an existing directory.

    Without this check a typo in the directory made the engine create it, and an empty database in it."""
    try:
        url = to_url(text)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's ArgumentError is not a ValueError argparse shows
        raise argparse.ArgumentTypeError(f"not a database URL or SQLite file path: {exc}") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        parent = Path(url.database).parent
        if not parent.is_dir():
            raise argparse.ArgumentTypeError(
                f"no directory {parent} for the SQLite database {url.database} (check the path, or create it first)"
            )
    return text


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--db`` option every store-using command shares (default: $ARENA_DB, else ratings.db)."""
    parser.add_argument(
        "--db",
        type=db_location,
        default=os.environ.get("ARENA_DB", DEFAULT_URL),
        help="SQLAlchemy URL or SQLite file path (default: $ARENA_DB, else %(default)s)",
    )
