"""`arena db upgrade|current`: migrate the ratings database, or show its schema revision."""

from __future__ import annotations

import argparse
from pathlib import Path

from arena.commands.common import add_db_argument
from arena.store import to_url


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="migrate or inspect the ratings database", description=__doc__)
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="apply pending schema migrations (creates the database)")
    add_db_argument(up)
    up.set_defaults(func=run_upgrade)
    cur = actions.add_parser("current", help="print the database's schema revision and the newest one")
    add_db_argument(cur)
    cur.set_defaults(func=run_current)


def _shown(url: str) -> str:
    return to_url(url).render_as_string(hide_password=True)


def run_upgrade(args: argparse.Namespace) -> int:
    from arena.store import Store, migrate

    with Store.open(args.db, upgrade=False) as store:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    if before == after:
        print(f"{_shown(args.db)}: already at {after}")
    else:
        print(f"{_shown(args.db)}: {before or '(blank)'} -> {after}")
    return 0 if after == migrate.head() else 1


def run_current(args: argparse.Namespace) -> int:
    from arena.store import Store, migrate

    url = to_url(args.db)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # Connecting would create an empty file; looking should not change anything.
        print(f"(none): no database file at {url.database}")
        return 0
    with Store.open(args.db, upgrade=False) as store:
        current = store.current_revision()
    head = migrate.head()
    if current == head:
        print(f"{current} (head)")
    else:
        print(f"{current or '(none)'}; newest is {head}: run `arena db upgrade --db ...`")
    return 0
