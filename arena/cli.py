"""The `arena` command. Each subcommand lives in its own module under ``arena.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Order here is the order in `arena --help`.
COMMAND_MODULES = [
    "arena.commands.demo",
    "arena.commands.validate",
    "arena.commands.seeds",
    "arena.commands.db",
    "arena.commands.annotators",
    "arena.commands.models",
    "arena.commands.recall",
    "arena.commands.train",
    "arena.commands.adapters",
    "arena.commands.leaderboard",
    "arena.commands.rounds",
    "arena.commands.export",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="arena",
        description="Side-by-side evaluation and human rating of Korean LLMs. "
        "Start with `arena demo`, or `arena validate eval_sets/*.jsonl` to check an eval set.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen subcommand's ``func(args) -> int``."""
    args = build_parser().parse_args(argv)
    # Imported here: `arena --help` need not load SQLAlchemy.
    from arena.commands.common import CommandError
    from arena.store import StoreError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (CommandError, StoreError) as exc:
        # One format for every command, without a traceback (arena.commands.common says the exit codes).
        # A store error is the user's: a database that cannot be opened, a round or name that is not there.
        print(f"arena {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, CommandError) else 2


if __name__ == "__main__":
    sys.exit(main())
