"""`arena validate PATH...`: check eval-set files; exit 1 naming file:line:field on any problem."""

from __future__ import annotations

import argparse
import sys

from arena.core.dialogs import validate_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check eval-set JSONL files", description=__doc__)
    p.add_argument("paths", nargs="+", help="eval-set JSONL files (one dialog per line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dialogs, problems = validate_paths(args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(args.paths)} file(s); nothing was written.", file=sys.stderr)
        return 1
    print(f"ok: {len(dialogs)} dialogs in {len(args.paths)} file(s)")
    return 0
