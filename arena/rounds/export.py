"""CSV / JSONL export of a round: one row per vote (with both answers' 1-5 ratings) and one per skip.

CSV is written as UTF-8 with a byte-order mark, which is what makes Excel read Korean correctly;
JSONL is plain UTF-8 with the Korean left unescaped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import pandas as pd

from arena.core import jsonout
from arena.rounds.workflow import Answers, load_config, load_items

if TYPE_CHECKING:
    from arena.store import Store

Format = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")

COLUMNS = [
    "round",
    "kind",
    "item_key",
    "eval_set",
    "dialog_id",
    "turn_index",
    "annotator",
    "choice",
    "winner",
    "model_a",
    "model_b",
    "left_model",
    "right_model",
    "a_position",
    "text_a",
    "text_b",
    "score_a",
    "score_b",
    "criteria_a",
    "criteria_b",
    "comment_a",
    "comment_b",
    "skip_reason",
    "generation_a_id",
    "generation_b_id",
    "created_at",
    "rated_at",
]


def _value(v: Any) -> Any:
    """Plain JSON-able values: no NaN, no pandas/numpy scalars, ISO-8601 UTC timestamps."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if not isinstance(v, (list, tuple, dict, str)) and pd.isna(v):  # pd.NA, NaT
        return None
    if hasattr(v, "to_pydatetime"):
        v = v.to_pydatetime()
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v


def round_rows(store: Store, round_: int | str) -> list[dict[str, Any]]:
    """Every vote and skip of a round as flat rows (keys: :data:`COLUMNS`), oldest first."""
    found, _ = load_config(store, round_)
    gens = store.generations_frame(found.id).set_index("generation_id")
    text = gens["text"].to_dict()
    ratings = store.ratings_frame()
    ratings = ratings[ratings["round_id"] == found.id]
    rated = {(r.generation_id, r.annotator): r for r in ratings.itertuples(index=False)}
    rows: list[dict[str, Any]] = []
    for v in store.votes_frame(found.id).itertuples(index=False):
        ra, rb = rated.get((v.generation_a_id, v.annotator)), rated.get((v.generation_b_id, v.annotator))
        winner = {"a": v.model_a, "b": v.model_b}.get(v.choice, v.choice)
        left, right = (v.model_a, v.model_b) if v.a_position == "left" else (v.model_b, v.model_a)
        rows.append(
            {
                "round": found.name,
                "kind": "vote",
                "item_key": v.item_key,
                "eval_set": v.eval_set,
                "dialog_id": v.dialog_id,
                "turn_index": v.turn_index,
                "annotator": v.annotator,
                "choice": v.choice,
                "winner": winner,
                "model_a": v.model_a,
                "model_b": v.model_b,
                "left_model": left,
                "right_model": right,
                "a_position": v.a_position,
                "text_a": text.get(v.generation_a_id),
                "text_b": text.get(v.generation_b_id),
                "score_a": ra.score if ra else None,
                "score_b": rb.score if rb else None,
                "criteria_a": list(ra.criteria) if ra else None,
                "criteria_b": list(rb.criteria) if rb else None,
                "comment_a": ra.comment if ra else None,
                "comment_b": rb.comment if rb else None,
                "skip_reason": None,
                "generation_a_id": v.generation_a_id,
                "generation_b_id": v.generation_b_id,
                "created_at": v.created_at,
                "rated_at": max(r.updated_at for r in (ra, rb)) if ra and rb else None,
            }
        )
    items = {it.key: it for it in load_items(store, found.id)}
    answers = Answers.load(store, found.id)
    for s in store.skips_frame(found.id).itertuples(index=False):
        it = items.get(s.item_key)
        ga = answers.get(it, it.model_a) if it else None
        gb = answers.get(it, it.model_b) if it else None
        rows.append(
            {
                **dict.fromkeys(COLUMNS),
                "round": found.name,
                "kind": "skip",
                "item_key": s.item_key,
                "annotator": s.annotator,
                "skip_reason": s.reason,
                "created_at": s.created_at,
                **(
                    {
                        "eval_set": it.eval_set,
                        "dialog_id": it.dialog_id,
                        "turn_index": it.turn_index,
                        "model_a": it.model_a,
                        "model_b": it.model_b,
                        "left_model": it.left_model,
                        "right_model": it.right_model,
                        "a_position": it.a_position,
                    }
                    if it
                    else {}
                ),
                **({"generation_a_id": ga[0], "text_a": text.get(ga[0])} if ga else {}),
                **({"generation_b_id": gb[0], "text_b": text.get(gb[0])} if gb else {}),
            }
        )
    rows = [{k: _value(row.get(k)) for k in COLUMNS} for row in rows]
    rows.sort(key=lambda r: (r["created_at"] or "", r["kind"]))
    return rows


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """CSV with a header row; lists as JSON text. ``out`` should be opened with encoding ``utf-8-sig``."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v for k, v in row.items()})
        n += 1
    return n


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON object a line, Korean unescaped."""
    n = 0
    for row in rows:
        out.write(jsonout.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def default_filename(round_name: str, fmt: str) -> str:
    """``<round>.<fmt>`` with characters that paths or shells trip on replaced (Korean is kept)."""
    safe = re.sub(r"[^\w.-]+", "_", round_name).strip("_.") or "round"
    return f"{safe}.{fmt}"


class ExportTargetError(ValueError):
    """The export path names something that is not a regular file (a device, directory, FIFO, socket)."""


_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def export_target(path: str | Path) -> tuple[Path, int | None]:
    """(file to replace, its permission bits or None for a new file) for an export to ``path``;
    ExportTargetError if it is not a file. A symlink is followed, so the file it points to gets the
    export and the link stays."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        via = f" (via the link {path})" if real != path.absolute() else ""
        raise ExportTargetError(f"{real} is {kind}{via}; give the path of a file to write")
    return real, stat.S_IMODE(st.st_mode)


def _temp_beside(target: Path) -> tuple[int, str]:
    """An open new file next to ``target``, created as open() would (0o666 less the umask, which
    mkstemp's owner-only file would not give)."""
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def export_round(store: Store, round_: int | str, fmt: str, path: str | Path) -> int:
    """Write a round's rows to ``path`` in ``fmt`` (csv: UTF-8 with BOM); returns the row count.

    Raises ExportTargetError, before anything is written, when ``path`` is not a regular file or a
    link to one (``arena export`` running as root once replaced /dev/full with a CSV)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    target, mode = export_target(path)
    rows = round_rows(store, round_)
    # Written beside the target and renamed over it once complete: a failed write (disk full, a file
    # size limit) leaves no half file behind and an earlier export at ``path`` as it was.
    fd, tmp = _temp_beside(target)
    try:
        # newline="": the csv module writes its own line endings (and keeps newlines inside answers intact).
        with open(fd, "w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as out:
            n = write_csv(rows, out) if fmt == "csv" else write_jsonl(rows, out)
        if mode is not None:  # an existing file keeps its permissions; a new one got 0o666 less the umask
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def export_text(store: Store, round_: int | str, fmt: str) -> str:
    """The same export as a string (CSV without the BOM, which belongs to files)."""
    buf = io.StringIO(newline="")
    rows = round_rows(store, round_)
    if fmt == "csv":
        write_csv(rows, buf)
    else:
        write_jsonl(rows, buf)
    return buf.getvalue()
