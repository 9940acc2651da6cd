"""`arena leaderboard --votes FILE.csv`: pairwise tables from battles brought from elsewhere.

The same battles give the same tables from a file as from the store (an `arena export` of a round read back
equals `arena leaderboard --round`), FastChat's winner spellings are read, style columns feed style control,
and every malformed file gets `file:line: column: message` and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena import stats
from arena.cli import main
from arena.leaderboards.votes_file import VotesFileError, read_votes_csv
from tests.test_leaderboard import N_BOOT, dialogs, filled  # noqa: F401 - fixtures
from tests.test_style import battles


def _json(capsys, *argv: str) -> dict:
    code = main(["leaderboard", "--boot", str(N_BOOT), "--format", "json", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _fails(capsys, path: Path, *argv: str) -> str:
    code = main(["leaderboard", "--votes", str(path), "--boot", "0", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_an_exported_round_read_back_gives_the_stores_pairwise_tables(filled, tmp_path: Path, capsys) -> None:  # noqa: F811
    db, _ = filled
    exported = tmp_path / "r1.csv"
    assert main(["export", "--db", db, "--round", "r1", "-o", str(exported)]) == 0
    capsys.readouterr()
    from_store = _json(capsys, "--db", db, "--round", "r1", "--tokenizer", "whitespace")["tables"]
    from_file = _json(capsys, "--votes", str(exported))
    assert set(from_file["tables"]) == {"pairwise", "win_rate", "battles"}  # no style columns asked for
    for name in ("pairwise", "win_rate", "battles"):
        assert from_file["tables"][name] == from_store[name], name
    assert from_file["counts"]["votes"] == len(pd.read_csv(exported, encoding="utf-8-sig").query("kind == 'vote'"))


def test_fastchat_spellings_and_both_bad_policy(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fastchat.csv"
    rows = ["question_id,model_a,model_b,winner,judge,turn"]
    rows += [f"q{k},솔라,라마,model_a,j1,1" for k in range(6)]
    rows += [f"q{k},라마,솔라,tie (bothbad),j2,1" for k in range(4)]
    rows += ["q9,라마,솔라,라마,j3,1", "q10,라마,솔라,tie,j3,1", "", ""]  # a winner by name; trailing blank lines
    path.write_text("\n".join(rows), encoding="utf-8")
    votes = read_votes_csv(path)
    assert list(votes["winner"]).count("both_bad") == 4 and list(votes["winner"]).count("model_a") == 7
    tie = _json(capsys, "--votes", str(path))["tables"]["pairwise"]
    drop = _json(capsys, "--votes", str(path), "--both-bad", "drop")["tables"]["pairwise"]
    assert {r["model"]: r["n_battles"] for r in tie} == {"솔라": 12, "라마": 12}
    assert {r["model"]: r["n_battles"] for r in drop} == {"솔라": 8, "라마": 8}
    expected = stats.pairwise_leaderboard(votes, n_boot=N_BOOT)
    assert [r["rating"] for r in tie] == pytest.approx(list(expected["rating"]))


def test_style_columns_feed_style_control(tmp_path: Path, capsys) -> None:
    frame, _ = battles(6, 6000, seed=5, length_coef=1.5, long_models=(1,))
    path = tmp_path / "styled.csv"
    out = frame.rename(columns={"length_a": "tokens_a", "length_b": "tokens_b"})
    out.to_csv(path, index=False, encoding="utf-8-sig")  # as Excel saves it: with a BOM
    doc = _json(capsys, "--votes", str(path), "--style-control")
    coefs = {r["feature"]: r for r in doc["tables"]["style_coefficients"]}
    assert coefs["length"]["coef"] > 0 and coefs["length"]["ci_low"] > 0  # the planted effect, with its sign
    assert abs(coefs["headers"]["coef"]) < 0.1  # headers have no effect in the simulation
    styled = {r["model"]: r for r in doc["tables"]["style_control"]}
    assert styled["m1"]["change"] < 0  # the model with 3x longer answers loses points once length is held equal
    md = main(["leaderboard", "--votes", str(path), "--style-control", "--boot", "0", "--table", "style_coefficients"])
    assert md == 0 and "(600 vs 300 tokens) wins" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "{f}:1: (header): empty file"),
        ("model_a,winner\nx,model_a\n", "{f}:1: model_b: missing column"),
        ("model_a,model_b,winner\n", "{f}:2: (file): no battles after the header line"),
        ("model_a,model_b,winner\nx,y,model_a\nx,y,draw\n", "{f}:3: winner: 'draw' is not one of"),
        ("model_a,model_b,winner\nx,x,tie\n", "{f}:2: model_b: same model as model_a (x)"),
        ("model_a,model_b,winner\n,y,tie\n", "{f}:2: model_a: empty; expected a model name"),
        ("model_a,model_b,winner,tokens_a\nx,y,tie,3\n", "{f}:1: tokens_b: missing column"),
        ("model_a,model_b,winner,tokens_a,tokens_b\nx,y,tie,3,-1\n", "{f}:2: tokens_b: '-1' is not a count"),
        ("model_a,model_b,winner,bold_a,bold_b\nx,y,tie,1.5,0\n", "{f}:2: bold_a: '1.5' is not a count"),
        ("model_a,model_b,winner,winner\nx,y,tie,tie\n", "{f}:1: winner: column appears more than once"),
        ('model_a,model_b,winner\nx,y,"model_a\nz",\nx,y,tie\n', "{f}:3: winner:"),  # quoted newline: its end line
    ],
)
def test_malformed_files_name_file_line_and_column(content: str, expected: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "votes.csv"
    path.write_text(content, encoding="utf-8")
    assert expected.format(f=path) in _fails(capsys, path)


def test_every_problem_is_listed_and_non_utf8_is_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "many.csv"
    path.write_text("model_a,model_b,winner\nx,y,a\nx,y,tie\nx,y,b\n", encoding="utf-8")
    err = _fails(capsys, path)
    assert f"{path}:2: winner" in err and f"{path}:4: winner" in err and ":3:" not in err
    cp949 = tmp_path / "cp949.csv"
    cp949.write_bytes("model_a,model_b,winner\n솔라,라마,tie\n".encode("cp949"))
    assert f"{cp949}:2: (file): not UTF-8" in _fails(capsys, cp949)
    plain = tmp_path / "plain.csv"
    plain.write_text("model_a,model_b,winner\nx,y,tie\n", encoding="utf-8")
    assert "--style-control needs style columns" in _fails(capsys, plain, "--style-control")
    assert "does not apply to --votes" in _fails(capsys, plain, "--round", "r1")
    assert "--votes has only the tables" in _fails(capsys, plain, "--table", "scores")
    assert "cannot read" in _fails(capsys, tmp_path / "missing.csv")
    with pytest.raises(VotesFileError):
        read_votes_csv(path)


def test_empty_style_cells_are_missing_not_zero(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("model_a,model_b,winner,tokens_a,tokens_b\nx,y,tie,3,\nx,y,model_a,10,5\n", encoding="utf-8")
    votes = read_votes_csv(path, style=True)
    assert np.isnan(votes.loc[0, "length_b"]) and votes.loc[1, "length_a"] == 10
