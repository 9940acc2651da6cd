"""``dobae_qa``: the 도배 (wallpapering) QA rows of seed 002 (DACON 도배 하자 질의응답 data).

Each row has two phrasings of one question and up to five reference answers. One dialog per phrasing
(the seed's own preprocessing expands each phrasing into its own question-answer pairs); the other phrasing
is kept in ``meta.paraphrase``. The first answer is the assistant turn, the others ``references["1"]``.
The tables are pandas/PDF printouts: cells ending in ``...`` were cut by the printout and are kept as shown
(``meta.truncated_answers`` lists them, 0 being the assistant turn).
"""

from __future__ import annotations

import re
from typing import Any

from arena.seeds.common import DialogBuilder, Seed, SeedFormatError

EVAL_SET = "dobae_qa"


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).removesuffix("...")


def read_table(seed: Seed, header: str) -> list[tuple[int, list[str]]]:
    """Rows (line, tab-separated cells) of the table whose header line matches ``header``."""
    start = seed.find(header)
    rows = []
    for number in range(start + 1, len(seed.lines) + 1):
        text = seed.line(number)
        if not text.strip():
            break
        cells = [c.strip() for c in text.split("\t")]
        if any(cells[1:]):  # the second table's header spilled "NO" onto an empty row
            rows.append((number, cells))
    return rows


def _dedupe(answers: list[str]) -> list[str]:
    """Drop answers that repeat an earlier one, also when the repeat is a cut or re-wrapped printout of it."""
    out: list[str] = []
    for a in answers:
        if not any(_squash(kept).startswith(_squash(a)) for kept in out):
            out.append(a)
    return out


def qa_dialog(
    seed: Seed, dialog_id: str, line: int, question: str, answers: list[str], category: str | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """One question with its reference answers."""
    answers = _dedupe(answers)
    b = DialogBuilder(dialog_id, EVAL_SET, category, seed.name, line)
    b.user(question, line)
    b.assistant(answers[0], line, truncated=answers[0].endswith("..."))
    if answers[1:]:
        b.references["1"] = answers[1:]
    cut = [k for k, a in enumerate(answers) if a.endswith("...")]
    if cut:
        b.meta["truncated"] = True
        b.meta["truncated_answers"] = cut
    b.meta.update(meta)
    return b.build()


def train_rows(seed: Seed) -> list[dict[str, Any]]:
    """The DACON train.csv sample (TRAIN_000..): two phrasings, five answers."""
    out = []
    for line, cells in read_table(seed, r"^\tid\t질문_1\t질문_2\tcategory\t답변_1"):
        _, row_id, q1, q2, category, *answers = cells
        for k, (q, other) in enumerate(((q1, q2), (q2, q1)), start=1):
            meta = {"dacon_id": row_id, "phrasing": k, "paraphrase": other}
            out.append(qa_dialog(seed, f"dobae-{row_id.lower()}-q{k}", line, q, answers, category, meta))
    return out


def augmented_rows(seed: Seed) -> list[dict[str, Any]]:
    """The team's augmented 가구수정 rows: a clean table with answer 1 and a PDF-wrapped one with answers 1-4."""
    clean = read_table(seed, r"^NO\t카테고리\t질문1\t질문2\t답변1$")
    wrapped = {cells[0]: (line, cells) for line, cells in read_table(seed, r"^카 테 고 리\t질문1\t질문2\t답변1")}
    out = []
    for line, (no, category, q1, q2, a1) in clean:
        if no not in wrapped:
            raise SeedFormatError(f"{seed.name}:{line}: augmented row {no} missing from the second table")
        wline, (_, _, wq1, wq2, *more) = wrapped[no]
        # The second table re-prints the rows with wrap spaces inside words; check it lines up.
        if _squash(wq1) != _squash(q1) or _squash(wq2) != _squash(q2):
            raise SeedFormatError(f"{seed.name}:{wline}: second table row {no} no longer matches line {line}")
        # Its answers 1-4 (answer 5 fell off the page); an answer 1 that is a cut copy of the first table's
        # is dropped as a repeat, a reworded one is kept.
        answers = [a1] + more
        for k, (q, other) in enumerate(((q1, q2), (q2, q1)), start=1):
            meta = {
                "row": f"augmented {no}",
                "phrasing": k,
                "paraphrase": other,
                "seed_lines": [line, wline],
                "reference_note": f"references are printed with line-wrap spaces inside words (line {wline}); kept as shown",
            }
            out.append(qa_dialog(seed, f"dobae-aug_{int(no):03d}-q{k}", line, q, answers, category, meta))
    return out


def question_answer_rows(seed: Seed) -> list[dict[str, Any]]:
    """The final Question/Answer frame's tail (rows 7400..): one question, its answers row by row."""
    rows = read_table(seed, r"^\tQuestion\tAnswer$")
    questions = {q for _, (_, q, _) in rows}
    if len(questions) != 1:
        raise SeedFormatError(f"{seed.name}:{rows[0][0]}: expected one question in the Question/Answer tail")
    first_line, (first_no, question, _) = rows[0]
    answers = [a for _, (_, _, a) in rows]
    meta = {
        "row": first_no,
        "seed_note": f"rows {first_no}-{rows[-1][1][0]}; the last repeats the first answer (dropped)",
    }
    return [qa_dialog(seed, f"dobae-row_{first_no}", first_line, question, answers, None, meta)]


def convert(seed: Seed) -> list[dict[str, Any]]:
    """All ``dobae_qa`` dialogs of seed 002, in seed order."""
    return train_rows(seed) + augmented_rows(seed) + question_answer_rows(seed)
