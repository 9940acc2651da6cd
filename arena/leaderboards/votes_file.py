"""Battles from elsewhere: a votes CSV (a spreadsheet, a FastChat/LMArena export) as the votes frame.

Columns ``model_a, model_b, winner`` (``model_a | model_b | tie | both_bad``; FastChat's ``tie (bothbad)``
is ``both_bad``; the winning model's own name, as spreadsheets and ``arena export`` write it, is read as
``model_a`` or ``model_b``), and optionally per-answer style counts for style control: ``tokens_a, tokens_b`` (or
``length_a, length_b``), ``headers_a, headers_b``, ``lists_a, lists_b``, ``bold_a, bold_b``. Other columns
(question ids, judges, timestamps of an export) are ignored; in a file with a ``kind`` column (``arena export``)
only ``vote`` rows are battles. Rows keep the file's order, which online Elo
uses as the order the votes were cast.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pandas as pd

from arena.stats.style import STYLE_FEATURES

REQUIRED = ("model_a", "model_b", "winner")
# FastChat's clean_battle exports write "tie (bothbad)"; the arena's own export writes both_bad.
WINNER_ALIASES = {
    "model_a": "model_a",
    "model_b": "model_b",
    "tie": "tie",
    "both_bad": "both_bad",
    "tie (bothbad)": "both_bad",
}
# CSV column prefix -> style feature. Token counts stand in for length: style control uses the normalised
# difference (x_a - x_b) / (x_a + x_b + 1), so any unit that is proportional to length gives the same fit.
STYLE_PREFIXES = {"tokens": "length", "length": "length", "headers": "headers", "lists": "lists", "bold": "bold"}
MAX_ERRORS = 20  # enough to see a pattern; a file with a wrong header would otherwise print every line


class VotesFileError(ValueError):
    """A malformed votes file; the message has one ``file:line: column: message`` line per problem."""


def _count(text: str) -> int | None:
    """A non-negative whole number ('12', '12.0'); None for an empty cell; ValueError otherwise."""
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(text)
    return int(value)


def read_votes_csv(path: str | Path, *, style: bool = False) -> pd.DataFrame:
    """The votes of ``path`` as columns model_a, model_b, winner (and feature_a/_b counts when present).

    With ``style``, at least one pair of style columns must be there. Raises VotesFileError listing every
    problem (up to MAX_ERRORS) with its line; nothing is read from a file that has any.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VotesFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise VotesFileError(f"{path}:{line}: (file): not UTF-8 text (save the CSV as UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise VotesFileError(f"{path}:1: (header): empty file; expected a header with {', '.join(REQUIRED)}")
    errors: list[str] = []
    for name in REQUIRED:
        if name not in header:
            errors.append(f"{path}:1: {name}: missing column (the header has: {', '.join(h for h in header if h)})")
    for name in {h for h in header if h and header.count(h) > 1}:
        errors.append(f"{path}:1: {name}: column appears more than once")
    features: dict[str, str] = {}  # feature -> CSV prefix
    for prefix, feature in STYLE_PREFIXES.items():
        have = [f"{prefix}_{side}" in header for side in ("a", "b")]
        if any(have) and not all(have):
            missing = f"{prefix}_{'b' if have[0] else 'a'}"
            errors.append(f"{path}:1: {missing}: missing column ({prefix}_a and {prefix}_b come together)")
        elif all(have):
            if feature in features:
                errors.append(f"{path}:1: {prefix}_a: both {features[feature]}_* and {prefix}_* give the length")
            features[feature] = prefix
    if style and not features and not errors:
        errors.append(
            f"{path}:1: tokens_a: --style-control needs style columns "
            "(tokens_a, tokens_b, headers_a, headers_b, lists_a, lists_b, bold_a, bold_b)"
        )
    if errors:
        raise VotesFileError("\n".join(errors))

    col = {name: header.index(name) for name in header if name}
    rows: list[dict[str, object]] = []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank lines, as spreadsheets leave at the end
        if len(record) < len(header):
            record = record + [""] * (len(header) - len(record))
        if "kind" in col and record[col["kind"]].strip() != "vote":
            continue  # arena export's skip rows
        row: dict[str, object] = {}
        problems: list[str] = []
        for name in ("model_a", "model_b"):
            value = record[col[name]].strip()
            if not value:
                problems.append(f"{path}:{line}: {name}: empty; expected a model name")
            row[name] = value
        winner = record[col["winner"]].strip()
        by_name = {str(row["model_a"]): "model_a", str(row["model_b"]): "model_b"}
        row["winner"] = WINNER_ALIASES.get(winner.lower()) or by_name.get(winner)
        if row["winner"] is None:
            expected = "model_a, model_b, tie, both_bad or the name of one of the two models"
            problems.append(f"{path}:{line}: winner: {winner!r} is not one of {expected}")
        if not problems and row["model_a"] == row["model_b"]:
            problems.append(f"{path}:{line}: model_b: same model as model_a ({row['model_a']}); a battle needs two")
        for feature, prefix in features.items():
            for side in ("a", "b"):
                name = f"{prefix}_{side}"
                try:
                    row[f"{feature}_{side}"] = _count(record[col[name]])
                except ValueError:
                    problems.append(
                        f"{path}:{line}: {name}: {record[col[name]].strip()!r} is not a count (a whole number >= 0)"
                    )
        errors += problems
        if len(errors) >= MAX_ERRORS:
            errors.append(f"{path}: stopped after {MAX_ERRORS} problems")
            break
        rows.append(row)
    if errors:
        raise VotesFileError("\n".join(errors))
    if not rows:
        raise VotesFileError(f"{path}:2: (file): no battles after the header line")
    columns = [*REQUIRED, *[f"{f}_{s}" for f in STYLE_FEATURES if f in features for s in ("a", "b")]]
    frame = pd.DataFrame(rows, columns=columns)
    for c in columns[len(REQUIRED) :]:
        frame[c] = frame[c].astype(float)  # an empty cell is a missing count (NaN), not zero
    return frame


def style_features(votes: pd.DataFrame) -> list[str]:
    """The style features ``votes`` carries counts for, in STYLE_FEATURES order."""
    return [f for f in STYLE_FEATURES if {f"{f}_a", f"{f}_b"} <= set(votes.columns)]
