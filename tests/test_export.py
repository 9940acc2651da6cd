"""Round export: CSV (UTF-8 with BOM, for Excel) and JSONL round-trip Korean text, votes and skips."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from arena import rounds
from arena.rounds import export
from arena.store import RatingInput, Store
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, with_annotators

# Commas, quotes, a newline and an emoji: everything a hand-rolled CSV writer gets wrong.
TRICKY = '코트는 "프록 코트"에서 유래했고,\n겉옷입니다 🧥'


@pytest.fixture
def voted_round(tmp_path):
    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["모델-가", "model-b"]))
    with Store.open(tmp_path / "r.db") as store:
        with_annotators(store, "지혜", "lee")
        rid, _ = make_round(store, registry, "주간 라운드/1", models=["모델-가", "model-b"], annotators=["지혜", "lee"])
        ids = {m.name: m.id for m in store.list_models()}
        for item in rounds.load_items(store, rid):
            for model in (item.model_a, item.model_b):
                store.record_generation(
                    model_id=ids[model],
                    eval_set=item.eval_set,
                    dialog_id=item.dialog_id,
                    turn_index=item.turn_index,
                    round_id=rid,
                    text=f"{model}: {TRICKY}",
                )
        first = rounds.next_assignment(store, rid, "지혜")
        rounds.submit_judgement(
            store,
            first,
            "지혜",
            "left",
            RatingInput(first.left_generation, 5, ["fluency"], "좋아요, 정말"),
            RatingInput(first.right_generation, 2),
        )
        skipped = rounds.next_assignment(store, rid, "lee")
        rounds.skip_item(store, skipped, "lee", "판단하기 어려움")
        yield store, rid, first, skipped


def test_csv_round_trips_korean_with_a_bom(voted_round, tmp_path):
    store, rid, first, skipped = voted_round
    path = tmp_path / "out.csv"
    assert export.export_round(store, rid, "csv", path) == 2
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    assert raw.decode("utf-8-sig").count("\r\n") >= 3  # header + rows, Excel-style line ends
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == export.COLUMNS
    vote = next(r for r in rows if r["kind"] == "vote")
    item = first.item
    assert vote["round"] == "주간 라운드/1" and vote["annotator"] == "지혜"
    assert (vote["eval_set"], vote["dialog_id"], vote["turn_index"]) == (
        item.eval_set,
        item.dialog_id,
        str(item.turn_index),
    )
    assert vote["left_model"] == item.left_model and vote["winner"] == item.left_model  # the left answer won
    assert vote["text_a"] == f"{item.model_a}: {TRICKY}" and vote["text_b"] == f"{item.model_b}: {TRICKY}"
    left_is_a = item.a_position == "left"
    assert vote["score_a"] == ("5" if left_is_a else "2") and vote["score_b"] == ("2" if left_is_a else "5")
    assert json.loads(vote["criteria_a" if left_is_a else "criteria_b"]) == ["fluency"]
    assert vote["comment_a" if left_is_a else "comment_b"] == "좋아요, 정말"
    assert vote["created_at"].endswith("Z") and vote["rated_at"].endswith("Z")
    skip = next(r for r in rows if r["kind"] == "skip")
    assert skip["annotator"] == "lee" and skip["skip_reason"] == "판단하기 어려움"
    assert skip["item_key"] == skipped.item.key and skip["model_a"] == skipped.item.model_a
    assert skip["choice"] == "" and skip["text_b"].endswith(TRICKY)
    # pandas (what an analyst would use) reads the same values.
    frame = pd.read_csv(path, encoding="utf-8-sig")
    assert frame.loc[frame["kind"] == "vote", "text_a"].iloc[0] == vote["text_a"]


def test_jsonl_matches_the_csv_rows(voted_round, tmp_path):
    store, rid, first, _ = voted_round
    path = tmp_path / "out.jsonl"
    assert export.export_round(store, "주간 라운드/1", "jsonl", path) == 2
    text = path.read_text(encoding="utf-8")
    assert "지혜" in text and "\\u" not in text  # Korean stays readable
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["kind"] for r in rows] == ["vote", "skip"]
    assert rows[0]["turn_index"] == first.item.turn_index and isinstance(rows[0]["score_a"], int)
    assert rows[0]["text_a"].endswith(TRICKY) and rows[1]["score_a"] is None
    assert rows == export.round_rows(store, rid)


def test_export_cli_writes_files_and_stdout(voted_round, tmp_path, capsys, monkeypatch):
    from arena.cli import main

    store, rid, _, _ = voted_round
    db = store.url
    out = tmp_path / "cli.csv"
    assert main(["export", "--round", "주간 라운드/1", "--format", "csv", "-o", str(out), "--db", db]) == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "wrote 2 rows" in capsys.readouterr().err
    assert main(["export", "--round", "주간 라운드/1", "--format", "jsonl", "-o", "-", "--db", db]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--round", "주간 라운드/1", "--format", "jsonl", "--db", db]) == 0
    assert len((tmp_path / "주간_라운드_1.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert main(["export", "--round", "nope", "--db", db]) == 2
    assert "no round" in capsys.readouterr().err


def test_export_of_a_round_without_judgements_is_just_a_header(tmp_path):
    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["a1", "b1"]))
    with Store.open(tmp_path / "r.db") as store:
        with_annotators(store, "kim", "lee")
        rid, _ = make_round(store, registry)
        path = tmp_path / "empty.csv"
        assert export.export_round(store, rid, "csv", path) == 0
    assert path.read_text(encoding="utf-8-sig").strip() == ",".join(export.COLUMNS)
