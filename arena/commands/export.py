"""`arena export --round R --format csv|jsonl`: a round's votes and skips with model names, dialog,
turn, both answers, 1-5 ratings, annotator and timestamps (CSV is UTF-8 with BOM, for Excel)."""

from __future__ import annotations

import argparse
import sys

from arena.commands.common import UserError, add_db_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a round's votes and ratings as CSV or JSONL", description=__doc__)
    p.add_argument("--round", required=True, dest="round_name", metavar="ROUND", help="round name")
    p.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="file format (default: csv)")
    p.add_argument("-o", "--output", metavar="PATH", help="file to write (default: ROUND.FORMAT; '-' for stdout)")
    add_db_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.rounds.export import ExportTargetError, default_filename, export_round, export_text
    from arena.store import Store, StoreError

    with Store.open(args.db) as store:
        try:
            if args.output == "-":
                sys.stdout.write(export_text(store, args.round_name, args.format))
                return 0
            path = args.output or default_filename(args.round_name, args.format)
            n = export_round(store, args.round_name, args.format, path)
        except (StoreError, ExportTargetError) as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:  # nothing was written: the export goes to a temp file renamed when complete
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {n} rows to {path}", file=sys.stderr)
    return 0
