"""Bad input becomes a located error or a correct result, never a traceback or a half-written file.

Hypothesis feeds the eval-set loader, the training-data converters and the round export arbitrary
Unicode, wrong types, mutated records, deep JSON and huge lines; live mode refuses oversized messages
in its handler. Each property test is bounded (max_examples) so the suite stays fast.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import resource
import signal
import subprocess
import sys
import tempfile
from itertools import count
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena import rounds
from arena.core.dialogs import Dialog, parse_file, validate_paths
from arena.rounds.export import COLUMNS, export_round, export_text, round_rows
from arena.store import RatingInput, Store
from tests.browser import ROOT
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, with_annotators
from training.data import convert_file

# database=None: no .hypothesis/ folder in the checkout; each run draws fresh examples.
FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# For properties that reuse one store across examples (a fixture hypothesis would otherwise warn about).
STORE_FUZZ = settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROLES = {"system", "user", "assistant", "tool"}

# Leaves and containers of arbitrary JSON; text without line breaks so that a value stays on its line.
TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


def _first_lines(path: Path, n: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


BASE_DIALOGS = _first_lines(ROOT / "eval_sets" / "tool_calls.jsonl", 3) + _first_lines(
    ROOT / "eval_sets" / "persona.jsonl", 2
)


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """A valid record with a few random edits: a value replaced by any JSON, a key dropped or added."""
    record = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 3))):
        containers = []

        def walk(node: Any, containers: list[Any] = containers) -> None:
            if isinstance(node, (dict, list)) and node:
                containers.append(node)
                for child in node.values() if isinstance(node, dict) else node:
                    walk(child, containers)

        walk(record)
        if not containers:
            break
        node = draw(st.sampled_from(containers))
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            node[key] = draw(JSON)
        elif action == "drop":
            del node[key]
        elif isinstance(node, dict):
            node[draw(TEXT)] = draw(JSON)
        else:
            node.append(draw(JSON))
    return record


def _line(draw: st.DrawFn, records: st.SearchStrategy[Any]) -> str:
    kind = draw(st.sampled_from(["record", "record", "json", "text", "deep", "blank"]))
    if kind == "record":
        return json.dumps(draw(records), ensure_ascii=draw(st.booleans()))
    if kind == "json":
        return json.dumps(draw(JSON), ensure_ascii=False)
    if kind == "text":
        return draw(TEXT)
    if kind == "deep":
        n = draw(st.integers(1, 3000))
        return "[" * n + "]" * n
    return ""


@st.composite
def jsonl_files(draw: st.DrawFn, records: st.SearchStrategy[Any]) -> list[str]:
    return [_line(draw, records) for _ in range(draw(st.integers(1, 6)))]


def _check_problems(problems: list[Any], path: Path, n_lines: int) -> None:
    for p in problems:
        assert p.file == str(path)
        assert 0 <= p.line <= n_lines, p
        assert isinstance(p.field, str) and p.field and isinstance(p.message, str) and p.message, p
        assert str(p).startswith(f"{path}:{p.line}: {p.field}: ")


# ------------------------------------------------------------------------------------------ eval sets


@FUZZ
@given(jsonl_files(mutated(BASE_DIALOGS)))
def test_eval_set_loader_gives_each_line_a_dialog_or_located_problems(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        dialogs, problems = parse_file(path)
    _check_problems(problems, path, len(lines))
    nonblank = {i for i, text in enumerate(lines, start=1) if text.strip()}
    dialog_lines, problem_lines = {n for n, _ in dialogs}, {p.line for p in problems}
    if not nonblank:  # a file of blank lines is refused as a whole, at its line 1
        assert not dialogs and [(p.line, p.field) for p in problems] == [(1, "(file)")]
        return
    assert dialog_lines | problem_lines == nonblank  # nothing silently dropped
    assert not dialog_lines & problem_lines  # a line is either loaded or refused, never half
    for _, dialog in dialogs:
        assert Dialog.model_validate(dialog.model_dump()) == dialog


def test_eval_set_loader_locates_bad_bytes_deep_json_duplicates_and_keeps_huge_lines(tmp_path: Path) -> None:
    good = json.dumps(BASE_DIALOGS[0], ensure_ascii=False)
    huge = dict(BASE_DIALOGS[0], id="huge", system="가" * 2_000_000)  # a 6 MB line
    (tmp_path / "a.jsonl").write_text("\n".join([good, json.dumps(huge, ensure_ascii=False), "[" * 100_000]) + "\n")
    other = json.dumps(BASE_DIALOGS[1], ensure_ascii=False).encode()
    (tmp_path / "b.jsonl").write_bytes(other + b"\n" + '{"id": "깨짐"}'.encode("cp949") + b"\n")
    dialogs, problems = validate_paths([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [d.id for d in dialogs] == [BASE_DIALOGS[0]["id"], "huge", BASE_DIALOGS[1]["id"]]
    assert len(dialogs[1].system) == 2_000_000
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'a.jsonl'}:3: (json): JSON nested too deeply",
        f"{tmp_path / 'b.jsonl'}:2: (line): not UTF-8: byte 0xb1 at column 9; save the file as UTF-8",
    ]
    dialogs, problems = validate_paths([tmp_path / "a.jsonl", tmp_path / "a.jsonl"])
    duplicates = [p for p in problems if p.field == "id"]
    assert [p.line for p in duplicates] == [1, 2] and all("duplicate id" in p.message for p in duplicates)


# ------------------------------------------------------------------------------------------ converters

BASE_RECORDS: dict[str, list[Any]] = {
    "dolly": [{"instruction": "코트가 뭐야?", "context": "옷 이야기", "response": "겉옷입니다.", "category": "qa"}],
    "alpaca": [{"instruction": "요약해 줘", "input": "긴 글", "output": "짧은 글"}],
    "sharegpt": [
        {"id": "v1", "conversations": [{"from": "human", "value": "안녕"}, {"from": "gpt", "value": "안녕하세요"}]}
    ],
    "korquad": [
        {
            "context": "서울은 한국의 수도이다.",
            "qas": [{"id": "q1", "question": "한국의 수도는?", "answers": [{"text": "서울", "answer_start": 0}]}],
        }
    ],
    "dobae": [
        {
            "id": "TRAIN_000",
            "질문_1": "도배지 종류는?",
            "질문_2": "벽지 종류?",
            "category": "마감재",
            "답변_1": "실크와 합지가 있습니다.",
            "답변_2": "종류가 많습니다.",
        }
    ],
    "emotion": [
        {
            "profile": {"emotion": {"type": "기쁨"}},
            "talk": {"content": {"HS01": "시험에 붙었어", "SS01": "축하해요!", "HS02": "고마워", "SS02": "잘됐네요"}},
        }
    ],
}


def _check_records(records: list[dict[str, Any]], path: Path, n_lines: int) -> None:
    for r in records:
        messages = r["messages"]
        assert messages and messages[-1]["role"] == "assistant", r
        assert all(m["role"] in ROLES and isinstance(m.get("content", ""), str) for m in messages), r
        file, line = r["source"].rsplit(":", 1)
        assert file == str(path) and 1 <= int(line) <= max(n_lines, 1)


@FUZZ
@given(
    st.sampled_from(sorted(BASE_RECORDS)).flatmap(
        lambda fmt: st.tuples(st.just(fmt), jsonl_files(mutated(BASE_RECORDS[fmt])), st.sampled_from(["jsonl", "json"]))
    )
)
def test_converters_give_records_or_located_problems(case: tuple[str, list[str], str]) -> None:
    fmt, lines, kind = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{kind}"
        if kind == "json":  # the same values as one JSON array (unparsable lines make the whole file bad JSON)
            path.write_text("[\n" + ",\n".join(line or "null" for line in lines) + "\n]\n", encoding="utf-8")
        else:
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        records, problems = convert_file(path, fmt)
        n_lines = len(path.read_text(encoding="utf-8").splitlines())
    _check_problems(problems, path, n_lines)
    _check_records(records, path, n_lines)


@FUZZ
@given(
    st.sampled_from(["dobae", "emotion", "alpaca"]),
    st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=5),
    st.lists(st.text(max_size=12), min_size=1, max_size=6),
)
def test_csv_converters_take_any_cells(fmt: str, rows: list[list[str]], header_tail: list[str]) -> None:
    header = {
        "dobae": ["질문_1", "답변_1"],
        "emotion": ["사람문장1", "시스템응답1"],
        "alpaca": ["instruction", "output"],
    }[fmt]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header + header_tail)
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(buf.getvalue(), encoding="utf-8-sig", newline="")
        records, problems = convert_file(path, fmt)
        n_lines = len(io.StringIO(buf.getvalue(), newline="").readlines())  # as csv counts them: \r ends one too
    _check_problems(problems, path, n_lines)
    _check_records(records, path, n_lines)


@pytest.mark.parametrize("fmt", sorted(BASE_RECORDS))
def test_converters_locate_bad_bytes_and_deep_json(fmt: str, tmp_path: Path) -> None:
    good = json.dumps(BASE_RECORDS[fmt][0], ensure_ascii=False)
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_bytes(b"\n".join([good.encode(), '{"x": "깨짐"}'.encode("cp949"), b"[" * 50_000, good.encode()]))
    records, problems = convert_file(jsonl, fmt)
    assert {r["source"] for r in records} == {f"{jsonl}:1", f"{jsonl}:4"}  # the good lines still count
    assert [(p.line, p.message) for p in problems] == [
        (2, "not UTF-8: byte 0xb1 at column 8; save the file as UTF-8"),
        (3, "JSON nested too deeply"),
    ]
    for name, data in (
        ("deep.json", b"[" * 50_000),
        ("bad.json", b'[{"a": 1},\n{"b": "\xff"}]'),
        ("bad.csv", "질문_1,답변_1\n".encode() + b"\xb0\xa1,x\n"),
    ):
        (tmp_path / name).write_bytes(data)
        records, problems = convert_file(tmp_path / name, fmt)
        assert not records and len(problems) == 1 and problems[0].field == "(file)", problems
        assert problems[0].message.startswith(("JSON nested too deeply", "not UTF-8: byte 0x"))
    assert problems[0].line == 2  # the CSV's bad byte is on its line 2


# ------------------------------------------------------------------------------------------ store text

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # NUL and lone surrogates included
_dialogs = count()


@pytest.fixture
def text_store(db_url: str):
    with Store.open(db_url) as store:
        store.add_annotator("kim", "pw")
        yield store, store.upsert_model("m", backend="local")


@settings(STORE_FUZZ, max_examples=50)
@given(answer=ANY_TEXT, comment=ANY_TEXT, criterion=ANY_TEXT)
def test_store_takes_any_text_a_client_or_model_sends(text_store, answer: str, comment: str, criterion: str) -> None:
    """JSON from a browser or a model server can carry NUL and lone surrogates: stored as U+FFFD, never an error."""
    store, model_id = text_store
    gen = store.record_generation(
        model_id=model_id, eval_set="fuzz", dialog_id=f"d{next(_dialogs)}", turn_index=1, text=answer
    )
    (rating,) = store.save_ratings("kim", [(gen, 3, [criterion], comment)])
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT g.text, r.comment, r.criteria FROM ratings r JOIN generations g"
                " ON g.id = r.generation_id WHERE r.id = :r"
            ),
            {"r": rating},
        ).one()
    clean = [x.replace("\x00", "\ufffd") for x in (answer, comment, criterion)]
    clean = ["".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in x) for x in clean]
    criteria = stored[2] if isinstance(stored[2], list) else json.loads(stored[2])
    assert [stored[0], stored[1], criteria] == [clean[0], clean[1], [clean[2]]]


# ------------------------------------------------------------------------------------------ export

FREE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # any Unicode SQLite can hold
_serial = count()


@pytest.fixture(scope="module")
def export_store(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("export-fuzz")
    registry = registry_of(server_models_yaml(tmp / "models.yaml", ["m-a", "m-b"]))
    # In memory: the property is about the export, and 40 rounds of commits with fsync would take half a minute.
    with Store.open("sqlite:///:memory:") as store:
        yield store, registry, tmp


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)


@settings(STORE_FUZZ, max_examples=25)
@given(
    names=st.tuples(FREE_TEXT, FREE_TEXT, FREE_TEXT),
    answers=st.lists(FREE_TEXT, min_size=8, max_size=8),
    comments=st.lists(FREE_TEXT, min_size=8, max_size=8),
    reason=FREE_TEXT,
)
def test_export_writes_back_exactly_what_the_store_holds(export_store, names, answers, comments, reason) -> None:
    store, registry, tmp = export_store
    n = next(_serial)
    voter, skipper, round_name = (f"{x} {n}{tag}".strip() for x, tag in zip(names, "vsr"))  # unique, never blank
    with_annotators(store, voter, skipper)
    rid, _ = make_round(store, registry, round_name, annotators=[voter, skipper], eval_sets=["emotion"])
    ids = {m.name: m.id for m in store.list_models()}
    items = rounds.load_items(store, rid)
    for i, (item, model) in enumerate((it, m) for it in items for m in (it.model_a, it.model_b)):
        store.record_generation(
            model_id=ids[model],
            eval_set=item.eval_set,
            dialog_id=item.dialog_id,
            turn_index=item.turn_index,
            round_id=rid,
            text=answers[i % len(answers)],
        )
    for i in range(len(items) - 1):
        a = rounds.next_assignment(store, rid, voter)
        rounds.submit_judgement(
            store,
            a,
            voter,
            ["left", "right", "tie", "both_bad"][i % 4],
            RatingInput(a.left_generation, 1 + i % 5, ["fluency"], comments[2 * i]),
            RatingInput(a.right_generation, 5, [], comments[2 * i + 1]),
        )
    rounds.skip_item(store, rounds.next_assignment(store, rid, skipper), skipper, reason)

    rows = round_rows(store, rid)
    assert len(rows) == len(items) and [r["kind"] for r in rows].count("skip") == 1
    csv_path, jsonl_path = tmp / f"{n}.csv", tmp / f"{n}.jsonl"
    assert export_round(store, rid, "csv", csv_path) == export_round(store, rid, "jsonl", jsonl_path) == len(rows)
    # Split on \n only, as JSON Lines says: U+2028 or U+0085 inside an answer is text, not a line end.
    assert [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").split("\n")[:-1]] == rows
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw[3:].decode() == export_text(store, rid, "csv")
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        read = list(csv.DictReader(fh))
    assert read == [{k: _csv_cell(r[k]) for k in COLUMNS} for r in rows]
    assert sorted(p.name for p in tmp.glob(".*")) == []  # no temp file left behind


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (256_000, 256_000))


def test_a_failed_export_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["m-a", "m-b"]))
    db = tmp_path / "r.db"
    with Store.open(db) as store:
        with_annotators(store, "kim", "lee")
        rid, _ = make_round(store, registry, "big-export", eval_sets=["persona"])
        ids = {m.name: m.id for m in store.list_models()}
        for item in rounds.load_items(store, rid):
            for model in (item.model_a, item.model_b):
                store.record_generation(
                    model_id=ids[model],
                    eval_set=item.eval_set,
                    dialog_id=item.dialog_id,
                    turn_index=item.turn_index,
                    round_id=rid,
                    text="긴 답변 " * 3000,
                )
        while (a := rounds.next_assignment(store, rid, "kim")) is not None:
            rounds.submit_judgement(store, a, "kim", "left")
    out = tmp_path / "big.csv"
    out.write_text("an earlier export\n")
    cmd = [sys.executable, "-m", "arena.cli", "export", "--round", "big-export", "--db", str(db), "-o", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == f"arena export: cannot write {out}: File too large"
    assert out.read_text() == "an earlier export\n" and not list(tmp_path.glob(".big.csv.*"))
    unlimited = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert unlimited.returncode == 0 and out.stat().st_size > 256_000


# ------------------------------------------------------------------------------------------ live mode


def test_live_mode_refuses_oversized_messages_in_its_handler(tmp_path: Path) -> None:
    from arena.core.i18n import t
    from arena.web.services import Services
    from arena.web.ui import live_tab
    from arena.web.ui.app import build_app

    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["m-a", "m-b"]))
    with Store.open(tmp_path / "r.db") as store:
        services = Services(store=store, registry=registry, dialogs=[])
        for lang in ("ko", "en"):
            app = build_app(services, lang=lang)
            start = next(f.fn for f in app.fns.values() if f.name == "start")
            status = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "live-status")
            for size, refused in (
                (live_tab.MAX_MESSAGE_CHARS + 1, True),
                (500_000, True),
                (live_tab.MAX_MESSAGE_CHARS, False),
            ):
                st = live_tab.LiveState()
                # The handler's request: an annotator of no round, who may use every model by name.
                out = start("가" * size, ["m-a", "m-b"], st, SimpleNamespace(username="kim"))
                expected = t(lang, "message_too_long", n=size, max=live_tab.MAX_MESSAGE_CHARS)
                assert (out.get(status) == expected) is refused
                assert (st.histories == []) is refused  # refused: nothing reaches a model or the store
        assert store.generations_frame().empty
