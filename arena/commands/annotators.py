"""`arena annotators add | list | passwd | disable | enable`: manage who may log in and rate."""

from __future__ import annotations

import argparse
import sys

from arena.commands.common import UserError, add_db_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotators", help="add, list, change or disable annotators", description=__doc__)
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

    passwd = actions.add_parser(
        "passwd", help="set a new password (prints a generated one); ends the account's sessions and lifts a login lock"
    )
    passwd.add_argument("name", help="login name")
    passwd.add_argument(
        "--stdin", action="store_true", help="read the new password from the first line of standard input instead"
    )
    add_db_argument(passwd)
    passwd.set_defaults(func=run_passwd)

    disable = actions.add_parser(
        "disable", help="stop an account from logging in and end its sessions (its ratings and votes stay)"
    )
    disable.add_argument("name", help="login name")
    add_db_argument(disable)
    disable.set_defaults(func=run_disable, disabled=True)

    enable = actions.add_parser("enable", help="let a disabled (or locked) account log in again")
    enable.add_argument("name", help="login name")
    add_db_argument(enable)
    enable.set_defaults(func=run_disable, disabled=False)


def run_add(args: argparse.Namespace) -> int:
    from arena.store import AlreadyExists, Store
    from arena.store.passwords import generate_password

    password = args.password or generate_password()
    with Store.open(args.db) as store:
        try:
            store.add_annotator(args.name, password, role=args.role)
        except (AlreadyExists, ValueError) as exc:
            raise UserError(str(exc)) from None
    print(f"added {args.role} {args.name!r}")
    if not args.password:
        print(f"password: {password}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from arena.store import Store
    from arena.store.models import utcnow

    with Store.open(args.db) as store:
        annotators = store.list_annotators()
    if not annotators:
        print("no annotators yet: `arena annotators add NAME`")
        return 0
    for a in annotators:
        state = "disabled" if a.disabled else "locked" if a.locked_until and a.locked_until > utcnow() else "active"
        print(f"{a.name}\t{a.role}\t{state}\t{a.created_at:%Y-%m-%d %H:%M} UTC")
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    from arena.store import NotFound, Store
    from arena.store.passwords import generate_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("--stdin: the first line of standard input is empty; expected the new password")
    else:
        password = generate_password()
    with Store.open(args.db) as store:
        try:
            store.set_password(args.name, password)
        except NotFound:
            raise UserError(f"no annotator {args.name!r} (see `arena annotators list`)") from None
    print(f"new password for {args.name!r}; their sessions have ended")
    if not args.stdin:
        print(f"password: {password}")
    return 0


def run_disable(args: argparse.Namespace) -> int:
    from arena.store import NotFound, Store

    with Store.open(args.db) as store:
        try:
            store.set_disabled(args.name, args.disabled)
        except NotFound:
            raise UserError(f"no annotator {args.name!r} (see `arena annotators list`)") from None
    print(f"disabled {args.name!r}; their sessions have ended" if args.disabled else f"enabled {args.name!r}")
    return 0
