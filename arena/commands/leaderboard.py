"""`arena leaderboard [--round R] [--eval-set S] [--category C] --format md|csv|json`: every leaderboard table.

Mean 1-5 scores (dialog-clustered bootstrap CIs), Bradley-Terry ratings from blind votes (vote bootstrap
CIs, ranks that separate only non-overlapping intervals, online Elo for comparison), win-rate and battle
matrices, left/right position bias, per-annotator counts, Krippendorff's alpha and automatic metrics.
Everything is read from the store and the eval sets; the same --seed prints the same numbers.

`arena leaderboard --votes FILE.csv [--style-control]` prints the pairwise tables of battles from elsewhere
(a spreadsheet, a FastChat/LMArena export) instead: columns model_a, model_b, winner (model_a | model_b |
tie | both_bad), and for --style-control tokens_a, tokens_b, headers_a, headers_b, lists_a, lists_b, bold_a,
bold_b (any of these pairs).
"""

from __future__ import annotations

import argparse
import io
import json
from typing import TYPE_CHECKING, Any

from arena import PROJECT_ROOT
from arena.commands.common import UserError, add_db_argument
from arena.core import jsonout

if TYPE_CHECKING:
    import pandas as pd

    from arena.leaderboards.assembly import Leaderboards

FORMATS = ("md", "csv", "json")
TITLES = {
    "scores": "Mean 1-5 score per model",
    "scores_by_eval_set": "Mean score per eval set",
    "scores_by_category": "Mean score per category",
    "scores_by_round": "Mean score per round",
    "pairwise": "Pairwise (Bradley-Terry) from blind votes",
    "style_control": "Style-controlled Bradley-Terry beside the raw ratings (length and markdown held equal)",
    "style_coefficients": "Style coefficients (log-odds per standard deviation of the normalised difference)",
    "win_rate": "Win rate of row model against column model (ties half)",
    "battles": "Battles per model pair",
    "position_bias": "Position bias: share of decisive votes won by the left answer (0.5 = none)",
    "annotators": "Annotators",
    "agreement": "Inter-annotator agreement (Krippendorff's alpha, items with >= 2 judgements)",
    "metrics": "Automatic metrics per model",
}
NOTES = {
    "pairwise": "rank = 1 + number of models whose CI lies entirely above this one. online_elo is "
    "order-dependent (votes in the order cast), shown only for comparison.",
    "style_control": "Fitted as FastChat's style control: per battle and feature (x_a - x_b) / (x_a + x_b + 1), "
    "standardised, one L2-regularised logistic fit of model strengths and feature coefficients; vote bootstrap "
    "CIs. length = characters without whitespace (the store) or the tokens_ columns (a --votes file). change = "
    "style-controlled minus raw rating.",
    "metrics": "similarity = best token match to the GT; tool_*_match = share of tool-call turns matched by "
    "name / name + arguments; repetition = similarity to the closest earlier assistant turn.",
}
TABLE_NAMES = tuple(TITLES)
VOTES_FILE_TABLES = ("pairwise", "style_control", "style_coefficients", "win_rate", "battles")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="leaderboards with 95%% CIs from the ratings database", description=__doc__)
    add_db_argument(p)
    p.add_argument(
        "--sets-dir",
        default=str(PROJECT_ROOT / "eval_sets"),
        metavar="DIR",
        help="eval-set folder, for categories and repetition (default: the shipped eval_sets/)",
    )
    p.add_argument(
        "--votes",
        metavar="FILE.csv",
        help="battles from this CSV instead of the store (model_a, model_b, winner; see above): pairwise tables",
    )
    p.add_argument(
        "--style-control",
        action="store_true",
        help="with --votes: also style-controlled BT from the file's tokens_/headers_/lists_/bold_ columns "
        "(from the store it is always computed)",
    )
    p.add_argument("--round", help="only this round (name or id)")
    p.add_argument("--eval-set", help="only this eval set")
    p.add_argument("--category", help="only dialogs of this category")
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default: md)")
    p.add_argument(
        "--table",
        choices=TABLE_NAMES,
        action="append",
        metavar="NAME",
        help="print only this table (repeatable; one --table with csv gives plain CSV): " + ", ".join(TABLE_NAMES),
    )
    p.add_argument("--boot", type=int, default=1000, metavar="N", help="bootstrap resamples for CIs (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--anchor", metavar="MODEL", help="rating of this model is fixed at 1000 (default: the mean is)")
    p.add_argument(
        "--both-bad",
        choices=("tie", "drop"),
        default="tie",
        help="'both bad' votes count as a tie or are dropped (default: tie)",
    )
    p.add_argument(
        "--tokenizer",
        choices=("kiwi", "whitespace"),
        default="kiwi",
        help="segmentation for computed similarity/repetition, as in the UI (default: kiwi)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.core.dialogs import EvalSetError, eval_set_files, load_dialogs
    from arena.core.metrics import default_splitter, split_words
    from arena.leaderboards.assembly import build_leaderboards
    from arena.store import Store

    if args.boot < 0:
        raise UserError("--boot must be >= 0") from None
    if args.votes:
        return _run_votes_file(args)
    if args.style_control:
        raise UserError("--style-control goes with --votes (from the store, style control is always shown)")
    try:
        dialogs = load_dialogs(eval_set_files(args.sets_dir))
    except EvalSetError as exc:
        raise UserError(f"invalid eval set:\n{exc}") from None
    with Store.open(args.db) as store:
        if args.round and store.get_round(args.round) is None and not _round_id_exists(store, args.round):
            known = ", ".join(r.name for r in store.list_rounds()) or "none yet"
            raise UserError(f"no round {args.round!r} (known: {known})") from None
        splitter = default_splitter() if args.tokenizer == "kiwi" else split_words
        try:
            boards = build_leaderboards(
                store,
                dialogs,
                round=args.round,
                eval_set=args.eval_set,
                category=args.category,
                n_boot=args.boot,
                seed=args.seed,
                both_bad=args.both_bad,
                anchor=args.anchor,
                splitter=splitter,
            )
        except ValueError as exc:  # e.g. an --anchor model without votes in this slice
            raise UserError(str(exc)) from None
    print(render(boards, args.format, args.table))
    return 0


def _run_votes_file(args: argparse.Namespace) -> int:
    from arena.leaderboards.assembly import votes_leaderboards
    from arena.leaderboards.votes_file import VotesFileError, read_votes_csv

    for flag, value in (("--round", args.round), ("--eval-set", args.eval_set), ("--category", args.category)):
        if value:
            raise UserError(f"{flag} filters the store; it does not apply to --votes") from None
    if bad := [t for t in args.table or [] if t not in VOTES_FILE_TABLES]:
        raise UserError(f"--votes has only the tables {', '.join(VOTES_FILE_TABLES)}; not {', '.join(bad)}")
    try:
        votes = read_votes_csv(args.votes, style=args.style_control)
    except VotesFileError as exc:
        raise UserError(str(exc)) from None
    try:
        boards = votes_leaderboards(
            votes,
            source=args.votes,
            style=args.style_control,
            n_boot=args.boot,
            seed=args.seed,
            both_bad=args.both_bad,
            anchor=args.anchor,
        )
    except ValueError as exc:  # an --anchor model that is not in the file
        raise UserError(str(exc)) from None
    print(render(boards, args.format, args.table))
    return 0


def _round_id_exists(store: Any, value: str) -> bool:
    return value.isdigit() and store.get_round(int(value)) is not None


def render(boards: Leaderboards, fmt: str, only: list[str] | None = None) -> str:
    """The chosen tables as markdown, CSV blocks (plain CSV for one table) or one JSON document."""
    tables = {k: v for k, v in boards.tables().items() if not only or k in only}
    if fmt == "json":
        return jsonout.dumps(
            {
                "filters": boards.filters.as_dict(),
                "settings": boards.settings,
                "counts": boards.counts,
                "tables": {k: _records(v) for k, v in tables.items()},
            },
            ensure_ascii=False,
            indent=1,
        )
    if fmt == "csv":
        if len(tables) == 1:
            return _csv(next(iter(tables.values()))).rstrip("\n")
        return "\n".join(f"# table: {name}\n{_csv(frame)}" for name, frame in tables.items()).rstrip("\n")
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    return _markdown(boards, tables)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # pandas' writer turns NaN/NA into null and numpy scalars into plain numbers.
    return json.loads(frame.to_json(orient="records", double_precision=10, date_format="iso"))


def _csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n", float_format="%.10g")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- markdown


def _md_table(frame: pd.DataFrame) -> str:
    """A markdown table of text cells (see arena.leaderboards.tables.display_table)."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "|".join("---" for _ in frame.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def _markdown(boards: Leaderboards, tables: dict[str, pd.DataFrame]) -> str:
    from arena.leaderboards.tables import display_table, metrics_wide, style_meaning

    f, s, n = boards.filters, boards.settings, boards.counts
    shown = ", ".join(f"{k}={v}" for k, v in f.as_dict().items() if v) or "none"
    scale = f"anchor {s['anchor']}" if s["anchor"] else "mean"
    if "source" in s:
        head = f"# Leaderboard\n\nbattles from {s['source']}: {n['votes']} votes, {n['models']} models; 95% CIs from "
        head += f"{s['n_boot']} bootstrap resamples, seed {s['seed']}; 'both bad' = {s['both_bad']}; BT scale: {scale} = 1000."
    out = (
        [head]
        if "source" in s
        else [
            f"# Leaderboard\n\nfilters: {shown}; {n['ratings']} ratings, {n['votes']} votes, {n['generations']} answers "
            f"({n['failed_generations']} failed, left out); 95% CIs from {s['n_boot']} bootstrap resamples, seed "
            f"{s['seed']}; 'both bad' = {s['both_bad']}; BT scale: {scale} = 1000."
        ]
    )
    for name, frame in tables.items():
        out.append(f"## {TITLES[name]}")
        if frame.empty or (name in ("win_rate", "battles") and len(frame.columns) <= 1):
            out.append("(no data)")
            continue
        out.append(_md_table(metrics_wide(frame) if name == "metrics" else display_table(frame)))
        if name in NOTES:
            out.append(NOTES[name])
        if name == "style_coefficients":
            out.append(
                "\n".join(f"- {line}" for line in style_meaning(frame, "en", "tokens" if "source" in s else "chars"))
            )
    return "\n\n".join(out)
