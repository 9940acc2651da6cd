"""Converters from the seed data formats to chat SFT records (``{"messages", "tools"?, "source"}``).

One converter per format; each turns one raw record (a JSONL line, a JSON-array element, a CSV row)
into zero or more records, and a record that cannot be converted becomes a ``Problem`` located by
file and line. Formats (seed 001: Dolly, Alpaca/KoAlpaca, KoVicuna/ShareGPT, KorQuAD 1.0; seed 002:
the 도배 DACON CSV; seed 004: the AIHub emotional dialogs; and the arena's own eval-set JSONL):

- ``dolly``     {"instruction", "context"?, "response", "category"?}
- ``alpaca``    {"instruction", "input"?, "output"}
- ``sharegpt``  {"conversations": [{"from": "human"|"gpt"|"system", "value"}]}   (KoVicuna)
- ``korquad``   a paragraph {"context", "qas": [{"question", "answers": [{"text", "answer_start"}]}]},
                or the official file {"data": [{"paragraphs": [...]}]}
- ``dobae``     CSV: 질문_1, 질문_2, 답변_1..답변_5 -> every question x answer pair (seed 002)
- ``emotion``   CSV 사람문장N/시스템응답N or JSON {"talk": {"content": {"HS01", "SS01", ...}}}, up to 3 turns
- ``evalset``   the arena's eval-set JSONL (tool calls and tool results kept; extra references become records)
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.dialogs import Problem

Record = dict[str, Any]
MAX_EMOTION_TURNS = 3  # the AIHub corpus: up to three exchanges (감정 상태 -> 진전된 대화 -> 마무리)
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "system": "system",
}


class BadRecord(ValueError):
    """A raw record that cannot become a training record; ``field`` says where in the record."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class DataError(Exception):
    """Bad records were found and ``skip_bad`` was not given: every problem, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Raw:
    """One raw record as read from a file: its 1-based line and a field-path prefix within that line."""

    line: int
    value: Any
    where: str = ""


# ------------------------------------------------------------------------------------------- readers


def _not_utf8(path: Path, line_bytes: bytes, column: int, line: int, field: str) -> Problem:
    """A Problem for the byte at ``column`` (0-based) of a line that is not UTF-8."""
    return Problem(
        str(path),
        line,
        field,
        f"not UTF-8: byte 0x{line_bytes[column]:02x} at column {column + 1}; save the file as UTF-8",
    )


def _decode(path: Path, data: bytes) -> str | Problem:
    """The file's text (a UTF-8 BOM dropped), or a Problem on the line of the first byte that is not UTF-8."""
    data = data.removeprefix(codecs.BOM_UTF8)  # by hand: utf-8-sig reports error positions off by the BOM
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        return _not_utf8(
            path, data[line_start:], exc.start - line_start, data.count(b"\n", 0, line_start) + 1, "(file)"
        )


def read_jsonl(path: Path) -> Iterator[Raw | Problem]:
    """Each non-blank line as a JSON value; a line that is not UTF-8 or not JSON is a Problem of its own."""
    # Bytes, decoded line by line: one bad byte (a file saved as CP949, say) costs its line, not the file.
    with path.open("rb") as fh:
        for number, data in enumerate(fh, start=1):
            data = data.removeprefix(codecs.BOM_UTF8) if number == 1 else data
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _not_utf8(path, data, exc.start, number, "(line)")
                continue
            if not text.strip():
                continue
            try:
                yield Raw(number, json.loads(text))
            except json.JSONDecodeError as exc:
                yield Problem(str(path), number, "(line)", f"not JSON: {exc.msg} at column {exc.colno}")
            except RecursionError:
                yield Problem(str(path), number, "(line)", "JSON nested too deeply")


def read_json(path: Path) -> Iterator[Raw | Problem]:
    """A JSON document: array elements with the line each starts on, or the document itself."""
    text = _decode(path, path.read_bytes())
    if isinstance(text, Problem):
        yield text
        return
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        try:
            yield Raw(text.count("\n", 0, start) + 1, json.loads(text))
        except json.JSONDecodeError as exc:
            yield Problem(str(path), exc.lineno, "(file)", f"not JSON: {exc.msg}")
        except RecursionError:
            yield Problem(str(path), text.count("\n", 0, start) + 1, "(file)", "JSON nested too deeply")
        return
    # Element by element with raw_decode, so each record keeps the line it starts on.
    decoder = json.JSONDecoder()
    pos, line = start + 1, text.count("\n", 0, start) + 1
    while True:
        nxt = _skip(text, pos, ",")
        line += text.count("\n", pos, nxt)
        pos = nxt
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield Problem(str(path), exc.lineno, "(file)", f"not JSON: {exc.msg} (records after this are not read)")
            return
        except RecursionError:
            yield Problem(str(path), line, "(file)", "JSON nested too deeply (records after this are not read)")
            return
        yield Raw(line, value)
        line += text.count("\n", pos, end)
        pos = end


def _skip(text: str, pos: int, separators: str) -> int:
    while pos < len(text) and (text[pos].isspace() or text[pos] in separators):
        pos += 1
    return pos


def read_csv(path: Path) -> Iterator[Raw | Problem]:
    """CSV rows as dicts keyed by the header (a UTF-8 BOM, as DACON files have, is dropped)."""
    # Decoded up front: a byte that is not UTF-8 is then reported on its line instead of raised mid-read.
    text = _decode(path, path.read_bytes())
    if isinstance(text, Problem):
        yield text
        return
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            if reader.fieldnames is None:
                return
            before = reader.line_num  # lines consumed so far: a row starts on the next one
            for row in reader:
                # Extra cells land under the key None; short rows have None values (read as empty).
                yield Raw(before + 1, {k.strip(): v for k, v in row.items() if isinstance(k, str)})
                before = reader.line_num
        except csv.Error as exc:
            yield Problem(str(path), reader.line_num, "(row)", f"unreadable CSV: {exc}")


def read_any(path: Path) -> Iterator[Raw | Problem]:
    """The reader for ``path``'s extension (.jsonl, .json, .csv)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".json":
        return read_json(path)
    return read_jsonl(path)


# ---------------------------------------------------------------------------------------- converters


def _text(raw: dict[str, Any], key: str, *, required: bool = True, where: str = "") -> str:
    """A string field, stripped (Windows line ends made plain); missing or empty is a BadRecord when required."""
    value = raw.get(key)
    if value is None or (isinstance(value, float) and value != value):  # NaN from spreadsheet exports
        value = ""
    if not isinstance(value, str):
        raise BadRecord(where + key, f"expected text, got {type(value).__name__}")
    value = value.replace("\r\n", "\n").strip()
    if required and not value:
        raise BadRecord(where + key, "missing or empty")
    return value


def _exchange(prompt: str, answer: str, **meta: Any) -> Record:
    record: Record = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    if any(v for v in meta.values()):
        record["meta"] = {k: v for k, v in meta.items() if v}
    return record


def _need_object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRecord("(record)", f"expected a JSON object, got {type(raw).__name__}")
    return raw


def convert_dolly(raw: Any) -> Iterator[Record]:
    """Dolly: the instruction, then its context after a blank line (as seed 001 renders it), answered by response."""
    raw = _need_object(raw)
    instruction, context, response = (
        _text(raw, "instruction"),
        _text(raw, "context", required=False),
        _text(raw, "response"),
    )
    category = raw.get("category") if isinstance(raw.get("category"), str) else None
    yield _exchange(f"{instruction}\n\n{context}" if context else instruction, response, category=category)


def convert_alpaca(raw: Any) -> Iterator[Record]:
    """Alpaca/KoAlpaca: instruction -> instruction, input -> context, output -> response (seed 001)."""
    raw = _need_object(raw)
    instruction, context, output = _text(raw, "instruction"), _text(raw, "input", required=False), _text(raw, "output")
    yield _exchange(f"{instruction}\n\n{context}" if context else instruction, output)


def convert_sharegpt(raw: Any) -> Iterator[Record]:
    """KoVicuna/ShareGPT: the whole conversation; a trailing unanswered human turn is dropped."""
    raw = _need_object(raw)
    turns = raw.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise BadRecord("conversations", "missing or empty list")
    messages: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]."
        if not isinstance(turn, dict):
            raise BadRecord(where.rstrip("."), "expected an object with 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise BadRecord(where + "from", f"unknown speaker {turn.get('from')!r}; expected human or gpt")
        if role == "system":
            if messages:
                raise BadRecord(where + "from", "a system turn may only come first")
            if system := _text(turn, "value", required=False, where=where):
                messages.append({"role": "system", "content": system})
            continue
        expected = "assistant" if messages and messages[-1]["role"] == "user" else "user"
        if role != expected:
            raise BadRecord(where + "from", f"expected a {'gpt' if expected == 'assistant' else 'human'} turn here")
        messages.append({"role": role, "content": _text(turn, "value", where=where)})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRecord("conversations", "no gpt answer")
    record: Record = {"messages": messages}
    if isinstance(raw.get("id"), str):
        record["meta"] = {"id": raw["id"]}
    yield record


def _korquad_answer(qa: dict[str, Any], context: str) -> str:
    answers = qa.get("answers") or ([qa["answer"]] if isinstance(qa.get("answer"), dict) else [])
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
        raise BadRecord("answers", "missing or empty list")
    answer = _text(answers[0], "text")
    start = answers[0].get("answer_start")
    # KorQuAD 1.0 answers are spans of the context; a span that no longer matches means a corrupt record.
    if isinstance(start, int) and context[start : start + len(answer)] != answer and answer not in context:
        raise BadRecord("answers[0]", f"answer {answer!r} is not in the context (answer_start {start})")
    return answer


def convert_korquad(raw: Any) -> Iterator[Record | BadRecord]:
    """KorQuAD 1.0: question -> instruction, answer -> response, context -> context; one record per question."""
    raw = _need_object(raw)
    if isinstance(raw.get("data"), list):  # the official file: data[].paragraphs[]
        for i, article in enumerate(raw["data"]):
            for j, paragraph in enumerate(article.get("paragraphs", []) if isinstance(article, dict) else []):
                for item in convert_korquad(paragraph):
                    if isinstance(item, BadRecord):
                        item = BadRecord(f"data[{i}].paragraphs[{j}].{item.field}", item.message)
                    yield item
        return
    context = _text(raw, "context")
    qas = raw.get("qas")
    if not isinstance(qas, list) or not qas:
        raise BadRecord("qas", "missing or empty list")
    for k, qa in enumerate(qas):
        try:
            if not isinstance(qa, dict):
                raise BadRecord("(qa)", "expected an object")
            question = _text(qa, "question")
            answer = _korquad_answer(qa, context)
        except BadRecord as exc:
            yield BadRecord(f"qas[{k}].{exc.field}", exc.message)
            continue
        yield _exchange(f"{question}\n\n{context}", answer, id=qa.get("id") if isinstance(qa.get("id"), str) else None)


def _numbered(raw: dict[str, Any], pattern: str) -> list[tuple[str, str]]:
    """(column, text) for columns matching ``pattern`` followed by a number, in number order."""
    cols = [(int(m.group(1)), k) for k in raw if (m := re.fullmatch(pattern + r"_?(\d+)", k.strip()))]
    return [(k, raw[k]) for _, k in sorted(cols)]


def convert_dobae(raw: Any) -> Iterator[Record]:
    """도배 DACON: every question phrasing x every reference answer (seed 002's own expansion)."""
    raw = _need_object(raw)
    # DACON's train.csv numbers its columns (질문_1, 답변_1..5); the team's final frame is Question/Answer.
    questions = [k for k, _ in _numbered(raw, "질문")] or ["Question"]
    answers = [k for k, _ in _numbered(raw, "답변")] or ["Answer"]
    qs = [q for k in questions if (q := _text(raw, k, required=False))]
    ans = [a for k in answers if (a := _text(raw, k, required=False))]
    if not qs:
        raise BadRecord(questions[0], "no question")
    if not ans:
        raise BadRecord(answers[0], "no answer")
    category = _text(raw, "category", required=False) or None
    for q in qs:
        for a in ans:
            yield _exchange(q, a, id=raw.get("id") or None, category=category)


def _emotion_pairs(raw: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(human column, system column) pairs and the object holding them (CSV row or talk.content)."""
    talk = raw.get("talk")
    if isinstance(talk, dict):
        content = talk.get("content")
        if not isinstance(content, dict):
            raise BadRecord("talk.content", "missing")
        return [(f"HS{n:02d}", f"SS{n:02d}") for n in range(1, MAX_EMOTION_TURNS + 1)], content
    humans = [k for k, _ in _numbered(raw, "사람문장")]
    if not humans:
        raise BadRecord("사람문장1", "missing (expected 사람문장N/시스템응답N columns or talk.content)")
    system = "시스템응답" if any(k.startswith("시스템응답") for k in raw) else "시스템문장"
    return [(f"사람문장{n}", f"{system}{n}") for n in range(1, MAX_EMOTION_TURNS + 1)], raw


def convert_emotion(raw: Any) -> Iterator[Record]:
    """AIHub 감성 대화: up to three human/system exchanges; it ends at the first empty or unanswered sentence."""
    raw = _need_object(raw)
    pairs, holder = _emotion_pairs(raw)
    messages: list[dict[str, str]] = []
    for human_key, system_key in pairs:
        human = _text(holder, human_key, required=False)
        reply = _text(holder, system_key, required=False)
        if not human or not reply:
            break
        messages += [{"role": "user", "content": human}, {"role": "assistant", "content": reply}]
    if not messages:
        first = pairs[0][0] if not _text(holder, pairs[0][0], required=False) else pairs[0][1]
        prefix = "talk.content." if holder is not raw else ""
        raise BadRecord(prefix + first, "missing or empty: no complete exchange")
    record: Record = {"messages": messages}
    profile = raw.get("profile")
    emotion = profile.get("emotion") if isinstance(profile, dict) else None
    # Only a label: a profile of another shape (a list, a bare string) is metadata we cannot read, not an error.
    emotion = (emotion.get("type") if isinstance(emotion, dict) else None) or raw.get("감정_대분류")
    if isinstance(emotion, str) and emotion:
        record["meta"] = {"emotion": emotion}
    yield record


def evalset_records(dialog: Any, *, references: bool = True) -> Iterator[Record]:
    """A validated eval-set Dialog as records: the dialog, then one per extra reference answer."""
    head = [{"role": "system", "content": dialog.system}] if dialog.system else []
    turns = [t.to_message() for t in dialog.turns]
    tools = dialog.tools or None

    def record(messages: list[dict[str, Any]]) -> Record:
        while messages and messages[-1]["role"] != "assistant":  # an open final user turn has no answer
            messages = messages[:-1]
        out: Record = {"messages": messages}
        if tools:
            out["tools"] = tools
        out["meta"] = {"id": dialog.id, "eval_set": dialog.eval_set}
        return out

    yield record(head + turns)
    if references:
        for key, answers in dialog.references.items():
            for answer in answers:
                if answer.strip():
                    yield record(head + turns[: int(key)] + [{"role": "assistant", "content": answer}])


# ---------------------------------------------------------------------------------------------- files

Converter = Callable[[Any], Iterable[Any]]
CONVERTERS: dict[str, Converter] = {
    "dolly": convert_dolly,
    "alpaca": convert_alpaca,
    "sharegpt": convert_sharegpt,
    "korquad": convert_korquad,
    "dobae": convert_dobae,
    "emotion": convert_emotion,
}
FORMATS = (*CONVERTERS, "evalset")
ALIASES = {
    "kovicuna": "sharegpt",
    "koalpaca": "alpaca",
    "korquad1": "korquad",
    "aihub_emotion": "emotion",
    "eval": "evalset",
}


@dataclass
class DataSource:
    """A data file and its format (``None``: detect from the extension and the first record)."""

    path: Path
    format: str | None = None

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """``FORMAT:PATH`` or ``PATH``."""
        head, sep, rest = spec.partition(":")
        name = ALIASES.get(head.lower(), head.lower())
        if sep and name in FORMATS:
            return cls(Path(rest), name)
        return cls(Path(spec), None)

    def __str__(self) -> str:
        return f"{self.format}:{self.path}" if self.format else str(self.path)


def detect_format(path: Path) -> str:
    """The format of ``path`` from its first record's fields (CSV headers, JSON keys)."""
    for item in read_any(path):
        if isinstance(item, Problem):
            break
        value = item.value
        keys = set(value) if isinstance(value, dict) else set()
        if any(re.fullmatch(r"질문_?\d+", k) for k in keys) or {"Question", "Answer"} <= keys:
            return "dobae"
        if "talk" in keys or any(k.startswith("사람문장") for k in keys):
            return "emotion"
        if "turns" in keys and "eval_set" in keys:
            return "evalset"
        if "conversations" in keys:
            return "sharegpt"
        if "qas" in keys or ("data" in keys and "version" in keys):
            return "korquad"
        if {"instruction", "response"} <= keys:
            return "dolly"
        if {"instruction", "output"} <= keys:
            return "alpaca"
        raise ValueError(
            f"{path}: cannot tell the format from its first record's fields {sorted(keys)}; "
            f"name it as FORMAT:PATH ({', '.join(FORMATS)})"
        )
    raise ValueError(f"{path}: no readable record to detect the format from; name it as FORMAT:PATH")


def convert_file(
    path: str | Path, fmt: str | None = None, *, references: bool = True
) -> tuple[list[Record], list[Problem]]:
    """Every record of one file (``source`` = ``file:line``) and every problem found; never raises on content."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "evalset":
        return _convert_evalset(path, references=references)
    convert = CONVERTERS[fmt]
    records: list[Record] = []
    problems: list[Problem] = []
    for item in read_any(path):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        try:
            for out in convert(item.value):
                if isinstance(out, BadRecord):
                    problems.append(Problem(str(path), item.line, out.field, out.message))
                else:
                    records.append({**out, "source": f"{path}:{item.line}"})
        except BadRecord as exc:
            problems.append(Problem(str(path), item.line, exc.field, exc.message))
    return records, problems


def _convert_evalset(path: Path, *, references: bool) -> tuple[list[Record], list[Problem]]:
    from arena.core.dialogs import parse_file

    parsed, problems = parse_file(path)
    records = []
    for line, dialog in parsed:
        converted = [r for r in evalset_records(dialog, references=references) if r["messages"]]
        if not converted:
            problems.append(Problem(str(path), line, "turns", "no assistant turn to train on"))
        records += [{**r, "source": f"{path}:{line}"} for r in converted]
    return records, problems


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (recorded in the adapter manifest)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedData:
    """All records of a run's data files, the problems skipped, and per-file facts for the manifest."""

    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


def load_records(sources: Iterable[str | DataSource], *, skip_bad: bool = False, references: bool = True) -> LoadedData:
    """Convert every source; with bad records, raise ``DataError`` unless ``skip_bad`` (then they are left out)."""
    out = LoadedData()
    sources = list(sources)
    for source in sources:
        src = source if isinstance(source, DataSource) else DataSource.parse(str(source))
        if not src.path.is_file():
            raise FileNotFoundError(f"data file not found: {src.path}")
        fmt = src.format or detect_format(src.path)
        records, problems = convert_file(src.path, fmt, references=references)
        out.records += records
        out.problems += problems
        out.files.append(
            {
                "path": str(src.path),
                "format": fmt,
                "sha256": file_sha256(src.path),
                "records": len(records),
                "bad": len(problems),
            }
        )
    if out.problems and not skip_bad:
        raise DataError(out.problems)
    if not out.records:
        raise DataError(
            [Problem(str(s), 0, "(file)", "no records") for s in sources]
            or [Problem("(data)", 0, "(file)", "no data files given")]
        )
    return out
