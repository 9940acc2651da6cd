"""`arena seeds convert [--seeds DIR] [--out DIR]`: rebuild the shipped eval sets from the seed documents.

`arena seeds retrieval [--out DIR]`: rebuild the shipped fashion retrieval set (documents and dialogs).
"""

from __future__ import annotations

import argparse

from arena import PROJECT_ROOT
from arena.commands.common import OperationFailed

DEFAULT_SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"
DEFAULT_OUT = PROJECT_ROOT / "eval_sets"


def register(sub: argparse._SubParsersAction) -> None:
    """Add `arena seeds convert` to the `arena` parser."""
    p = sub.add_parser("seeds", help="convert the seed documents into eval sets", description=__doc__)
    actions = p.add_subparsers(dest="seeds_command", metavar="ACTION", required=True)
    convert = actions.add_parser("convert", help="write eval_sets/*.jsonl from the seed documents", description=__doc__)
    convert.add_argument(
        "--seeds",
        default=str(DEFAULT_SEEDS),
        help=f"directory holding 000_*.txt .. 004_*.txt (default: {DEFAULT_SEEDS})",
    )
    convert.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"where to write <eval_set>.jsonl (default: {DEFAULT_OUT})"
    )
    convert.set_defaults(func=run_convert)
    retrieval = actions.add_parser(
        "retrieval", help="write the fashion retrieval set (index and dialogs)", description=__doc__
    )
    retrieval.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default: {DEFAULT_OUT})")
    retrieval.set_defaults(func=run_retrieval)


def run_convert(args: argparse.Namespace) -> int:
    """Convert the seeds and print the dialogs written per set; 1 if a seed no longer fits the converter."""
    # Imported here so that `arena --help` stays fast.
    from arena.seeds import convert_all
    from arena.seeds.common import SeedFormatError

    try:
        counts = convert_all(args.seeds, args.out)
    except (SeedFormatError, OSError) as exc:
        raise OperationFailed(f"convert: {exc}") from None
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} dialogs")
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    """Write the retrieval set (byte-identical on every run) and print the two paths."""
    from arena.seeds.retrieval import write_fashion_retrieval

    for path in write_fashion_retrieval(args.out):
        print(path)
    return 0
