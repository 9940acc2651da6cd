"""`arena annotators add NAME | list`: manage who may log in and rate."""

from __future__ import annotations

import argparse
import sys

from arena.commands.db import add_db_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotators", help="add or list annotators", description=__doc__)
    actions = p.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an annotator (prints a generated password if none is given)")
    add.add_argument("name", help="login name")
    add.add_argument("--password", help="password to set (default: generate and print one)")
    add.add_argument("--role", choices=["annotator", "researcher"], default="annotator")
    add_db_argument(add)
    add.set_defaults(func=run_add)

    ls = actions.add_parser("list", help="list annotators")
    add_db_argument(ls)
    ls.set_defaults(func=run_list)


def run_add(args: argparse.Namespace) -> int:
    from arena.store import AlreadyExists, Store
    from arena.store.passwords import generate_password

    password = args.password or generate_password()
    with Store.open(args.db) as store:
        try:
            store.add_annotator(args.name, password, role=args.role)
        except (AlreadyExists, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"added {args.role} {args.name!r}")
    if not args.password:
        print(f"password: {password}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from arena.store import Store

    with Store.open(args.db) as store:
        annotators = store.list_annotators()
    if not annotators:
        print("no annotators yet: `arena annotators add NAME`")
        return 0
    for a in annotators:
        print(f"{a.name}\t{a.role}\t{a.created_at:%Y-%m-%d %H:%M} UTC")
    return 0
