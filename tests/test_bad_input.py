"""Bad input that used to get through: each gets one clear message (file, line, field, what was expected),
a non-zero exit, and nothing half-written (issue 14 items 7, 8, 10; issue 15 item 9 is the progress test).

CLI checks run the real entry point: ``arena.cli.main`` in-process, or ``python -m arena.cli`` where the
command would start a server or set process-wide state.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from arena.cli import main
from arena.store import Store
from arena.store.store import MAX_COMMENT_CHARS
from backends import templates
from backends.registry import PROJECT_ROOT, RegistryError, load_config
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, with_annotators

EVAL_SETS = PROJECT_ROOT / "eval_sets"
DIALOG = {
    "id": "d1",
    "eval_set": "e",
    "turns": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요"}],
}


def arena(*args: str, cwd: Path = PROJECT_ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``arena ARGS`` in a fresh process (this checkout's code), output captured."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "arena.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ export -o


@pytest.fixture
def exportable(tmp_path):
    """A started round (no judgements: the export is its header) and the CLI arguments to export it."""
    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["a1", "b1"]))
    db = str(tmp_path / "r.db")
    with Store.open(db) as store:
        with_annotators(store, "kim", "lee")
        make_round(store, registry, "r1")
    return ["export", "--round", "r1", "--format", "csv", "--db", db]


def test_export_refuses_what_is_not_a_file_and_writes_through_a_link_keeping_the_mode(exportable, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    directory = tmp_path / "folder"
    directory.mkdir()
    link_to_fifo = tmp_path / "to-pipe.csv"
    link_to_fifo.symlink_to(fifo)
    refused = [
        (fifo, "is a FIFO"),
        (directory, "is a directory"),
        (link_to_fifo, f"is a FIFO (via the link {link_to_fifo})"),
    ]
    if os.geteuid() == 0:  # as in the report: root replaced /dev/full. Here a node of our own, in tmp_path.
        full = tmp_path / "full"
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        refused.append((full, "is a character device"))
    for target, why in refused:
        kind = stat.S_IFMT(os.lstat(target).st_mode)
        assert main([*exportable, "-o", str(target)]) == 2, target
        err = capsys.readouterr().err
        assert f"arena export: {target.resolve()} {why}; give the path of a file to write" in err, err
        assert stat.S_IFMT(os.lstat(target).st_mode) == kind  # still a FIFO, a directory, a link, a device
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []  # no temp file left

    real = tmp_path / "real.csv"
    real.write_text("old export\n", encoding="utf-8")
    real.chmod(0o600)  # an export of ratings someone keeps private
    link = tmp_path / "latest.csv"
    link.symlink_to(real.name)
    assert main([*exportable, "-o", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == real.name  # the link stays and points where it did
    assert real.read_bytes().startswith(b"\xef\xbb\xbf") and stat.S_IMODE(real.stat().st_mode) == 0o600
    new = tmp_path / "new.csv"
    umask = os.umask(0o027)
    try:
        assert main([*exportable, "-o", str(new)]) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # a new file: 0o666 less the umask, as open() makes it


# ------------------------------------------------------------------------------------------ templates


def test_an_unknown_template_name_is_refused_everywhere(tmp_path):
    messages = [{"role": "user", "content": "안녕"}]
    with pytest.raises(KeyError, match="unknown chat template 'koalpca'"):
        templates.render("koalpca", messages)  # it used to return "koalpca": the prompt of every dialog
    assert templates.render("{{ messages[0].content }}!", messages) == "안녕!"  # Jinja source still renders

    models = tmp_path / "models.yaml"
    models.write_text(
        textwrap.dedent(f"""\
        models:
          - {{name: good, kind: local, path: '{tmp_path}', template: koalpaca}}
          - {{name: typo, kind: local, path: '{tmp_path}', template: koalpca}}
        """),
        encoding="utf-8",
    )
    with pytest.raises(RegistryError) as exc:
        load_config(models)
    assert str(exc.value) == (
        f"{models}: invalid models file:\n  models[1] (typo): template: unknown chat template "
        "'koalpca'; known: gemma, koalpaca, llama31, solar, or a path ending in .jinja"
    )
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        f"models:\n  - {{name: m, kind: local, path: '{tmp_path}', template: nope.jinja}}\n", encoding="utf-8"
    )
    with pytest.raises(RegistryError, match=r"models\[0\] \(m\): template: no template file at .*nope\.jinja"):
        load_config(missing)

    # `arena serve` refuses it at start-up, with the message and without a traceback.
    served = arena("serve", "--config", str(models), "--db", str(tmp_path / "r.db"), "--port", "9")
    assert served.returncode == 2 and "models[1] (typo): template: unknown chat template 'koalpca'" in served.stderr
    assert "Traceback" not in served.stderr and not (tmp_path / "r.db").exists()

    train = tmp_path / "train.yaml"
    train.write_text(f"base_model: {tmp_path}\ndata: [x.jsonl]\ntemplate: koalpca\n", encoding="utf-8")
    assert main(["train", "--config", str(train)]) == 2  # before any data or model is read


def test_train_refuses_bad_settings_and_a_missing_base_before_loading_anything(tmp_path, capsys):
    data = jsonl(tmp_path / "d.jsonl", [{"instruction": "질문", "response": "답"}] * 3)
    out = tmp_path / "adapters"
    config = tmp_path / "train.yaml"
    config.write_text(
        f"base_model: {PROJECT_ROOT / 'models' / 'polyglot-tiny'}\ndata: [{data}]\noutput_dir: {out}\nlora_r: 0\n",
        encoding="utf-8",
    )
    cases = [
        ([], f"arena train: {config}:4: lora_r: must be a whole number >= 1, not 0"),  # the YAML file's line
        (["--lora_r", "8", "--learning_rate", "-1"], "arena train: --learning_rate: must be > 0, not -1.0"),
        (["--lora_r", "8", "--lora_dropout", "1.5"], "arena train: --lora_dropout: must be in [0, 1), not 1.5"),
        (["--lora_r", "8", "--template", "koalpca"], "arena train: --template: unknown chat template 'koalpca'"),
    ]
    for extra, message in cases:
        assert main(["train", "--config", str(config), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not out.exists()  # no run directory for a run that cannot start

    nowhere = tmp_path / "no-model"
    for extra in ([], ["--dry_run"]):
        rc = main(["train", "--config", str(config), "--lora_r", "8", "--base_model", str(nowhere), *extra])
        err = capsys.readouterr().err
        # A user's mistake, said the same way by the real run and the dry run: exit 2, one line.
        assert rc == 2 and f"arena train: base_model: no model directory at {nowhere}" in err, err
        assert "Repo id" not in err and not out.exists()


# ------------------------------------------------------------------------------------------ validate


def test_validate_refuses_assistant_first_dialogs_nameless_tools_and_empty_files(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assistant_first = {**DIALOG, "id": "a", "turns": list(reversed(DIALOG["turns"]))}
    no_function = {**DIALOG, "id": "b", "tools": [{"type": "function"}]}
    no_name = {**DIALOG, "id": "c", "tools": [{"type": "function", "function": {"description": "검색"}}]}
    system_then_user = {**DIALOG, "id": "ok", "turns": [{"role": "system", "content": "규칙"}, *DIALOG["turns"]]}
    bad = jsonl(tmp_path / "bad.jsonl", [assistant_first, no_function, no_name, system_then_user])
    assert main(["validate", str(empty), str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{empty}:1: (file): no dialogs: the file is empty (one JSON dialog per line expected)",
        f"{bad}:1: turns[0].role: a dialog starts with a user turn, not assistant",
        f'{bad}:2: tools[0].function: missing: each tool is {{"type": "function", "function": {{"name": ..., '
        f'"parameters": {{...}}}}}}',
        f"{bad}:3: tools[0].function.name: missing or empty: the tool's name",
        "4 problem(s) in 2 file(s); nothing was written.",
    ]
    assert main(["validate", *map(str, sorted(EVAL_SETS.glob("*.jsonl")))]) == 0  # the shipped sets still pass


# ------------------------------------------------------------------------------------------ databases


def test_db_commands_refuse_a_non_database_a_future_one_and_a_missing_directory(tmp_path, capsys):
    text = tmp_path / "notes.db"
    text.write_text("not a database\n", encoding="utf-8")
    future = tmp_path / "future.db"
    Store.open(future).close()
    engine = sa.create_engine(f"sqlite:///{future}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    for argv in (["db", "current"], ["db", "upgrade"], ["export", "--round", "r1"], ["leaderboard"]):
        assert main([*argv, "--db", str(text)]) == 2, argv
        assert f"sqlite:///{text}: cannot open the database: file is not a database" in capsys.readouterr().err
        assert main([*argv, "--db", str(future)]) == 2, argv
        err = capsys.readouterr().err
        assert "schema revision 9999_from_the_future, which this arena does not know" in err
        assert "written by a newer arena" in err and "run `arena db upgrade" not in err
    assert text.read_text(encoding="utf-8") == "not a database\n"

    typo = tmp_path / "ratinsg" / "ratings.db"
    with pytest.raises(SystemExit) as exc:
        main(["db", "upgrade", "--db", str(typo)])
    assert exc.value.code == 2 and f"no directory {typo.parent} for the SQLite database" in capsys.readouterr().err
    assert not typo.parent.exists()  # the engine used to create the directory and an empty database in it


# ------------------------------------------------------------------------------------------ serve


def test_serve_refuses_a_missing_eval_set_directory_and_bad_eval_sets_without_a_traceback(tmp_path):
    nowhere = tmp_path / "eval-sets-typo"
    served = arena("serve", "--eval-sets", str(nowhere), "--db", str(tmp_path / "r.db"), "--port", "9")
    assert served.returncode == 2 and f"arena serve: --eval-sets: no directory {nowhere}" in served.stderr
    bad_sets = tmp_path / "sets"
    bad_sets.mkdir()
    jsonl(bad_sets / "s.jsonl", [DIALOG, {**DIALOG, "id": "d2", "turns": [{"role": "robot", "content": "x"}]}])
    served = arena("serve", "--eval-sets", str(bad_sets), "--db", str(tmp_path / "r.db"), "--port", "9")
    assert served.returncode == 2, served.stderr
    assert f"{bad_sets / 's.jsonl'}:2: turns[0].role: unknown role 'robot'" in served.stderr
    assert "Traceback" not in served.stderr and not (tmp_path / "r.db").exists()


# ------------------------------------------------------------------------------------------ recall


def test_recall_names_the_file_and_line_of_a_malformed_index(tmp_path, capsys):
    lines = (EVAL_SETS / "retrieval" / "fashion_docs.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = '{"id": "x", "title": broken}'
    index = tmp_path / "docs.jsonl"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc = main(
        [
            "recall",
            "--eval-set",
            str(EVAL_SETS / "fashion_retrieval.jsonl"),
            "--index",
            str(index),
            "--tokenizer",
            "whitespace",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"arena recall: {index}:3: invalid JSON: Expecting value at column 22" in err, err


# ------------------------------------------------------------------------------------------ /api/adapters


def test_the_adapters_api_answers_400_for_a_nul_byte_or_a_huge_path(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from arena.web.api import mount_api

    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["base"]))
    with Store.open(tmp_path / "r.db") as store:
        store.add_annotator("boss", "pw-1234", role="researcher")
        app = FastAPI()
        mount_api(app, SimpleNamespace(store=store, registry=registry))
        client = TestClient(app, raise_server_exceptions=False)
        for path, message in (
            ("/tmp/a\x00b", "path: contains a NUL byte"),
            ("/" + "x" * 900_000, "path: 900,001 bytes long; a path has at most 4,096"),
            ("/" + "y" * 300, "path: cannot be read: File name too long"),
        ):
            r = client.post("/api/adapters", json={"path": path, "base": "base"}, auth=("boss", "pw-1234"))
            assert r.status_code == 400 and r.json()["detail"].startswith(message), (r.status_code, r.text[:300])
        assert registry.names() == ["base"]


# ------------------------------------------------------------------------------------------ ratings


def test_the_store_refuses_bool_scores_and_non_text_comments_and_folds_repeated_criteria(tmp_path):
    with Store.open(tmp_path / "r.db") as store:
        store.add_annotator("kim", "pw-1234")
        model = store.upsert_model("m", backend="local")
        gen = store.record_generation(model_id=model, eval_set="e", dialog_id="d", turn_index=1, text="답")
        refused = [
            ((gen, True, [], ""), "score must be an integer 1-5, not True"),
            ((gen, 3, [], 5), "comment must be text, not int"),
            (
                (gen, 3, [], "가" * (MAX_COMMENT_CHARS + 1)),
                f"comment: {MAX_COMMENT_CHARS + 1:,} characters; at most {MAX_COMMENT_CHARS:,}",
            ),
            ((gen, 3, [f"c{i}" for i in range(17)], ""), "criteria: 17 different ones; at most 16"),
            ((gen, 3, ["x" * 101], ""), "criteria: a name longer than 100 characters"),
        ]
        for row, message in refused:
            with pytest.raises(ValueError, match=message.replace("(", r"\(")):
                store.save_ratings("kim", [row])
        assert store.ratings_frame().empty  # nothing half-written
        store.save_ratings("kim", [(gen, 4, ["fluency"] * 1000 + ["tool_use_correct", "fluency"], None)])
        row = store.ratings_frame().iloc[0]
    assert list(row["criteria"]) == ["fluency", "tool_use_correct"] and row["comment"] == ""


# ------------------------------------------------------------------------------------------ the web page


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `arena serve` with a running round whose answers are stored, and an annotator."""
    from tests.arena_process import ArenaProcess
    from tests.fake_model_servers import running
    from tests.rounds_helpers import store_answers

    tmp = tmp_path_factory.mktemp("bad-input")
    with running("instant") as model:
        config = server_models_yaml(tmp / "serve.yaml", ["m-a", "m-b"], model.base_url)
        db = str(tmp / "ratings.db")
        with Store.open(db) as store:
            store.add_annotator("ann1", "pw-1234")
            rid, _ = make_round(
                store, registry_of(config), "라운드", models=["m-a", "m-b"], annotators=["ann1"], eval_sets=["emotion"]
            )
            store_answers(store, rid)
        with ArenaProcess(config, db, tmp / "serve.log") as server:
            yield server, db


@pytest.mark.slow
async def test_a_blind_vote_with_score_true_or_an_overlong_comment_is_refused_by_the_page(served):
    from tests.gradio_http import GradioSession

    server, db = served
    for lang, path in (("ko", ""), ("en", "/en")):
        s = GradioSession(server.url + path)
        async with s:
            assert await s.login("ann1", "pw-1234")
            await s.load_config()
            await s.page_loaded()
            assert (await s.call(s.dependency("blind_next"), blind_round="라운드")).ok
            submit = s.dependency("blind_submit")
            message = {"ko": "점수는 1~5 중 하나", "en": "A score is one of 1-5"}
            for bad in ({"blind_score_0": True}, {"blind_score_1": True}):
                r = await s.call(submit, **{"blind_vote": "left", "blind_score_0": 4, "blind_score_1": 2, **bad})
                assert not r.ok and message[lang] in r.text(), r.text()[:500]
            # Gradio's Textbox hands the handler str() of what came (a number is stored as its digits);
            # an overlong comment is refused before the store sees it.
            r = await s.call(
                submit,
                blind_vote="left",
                blind_score_0=4,
                blind_score_1=2,
                blind_comment_0="가" * (MAX_COMMENT_CHARS + 1),
            )
            assert not r.ok and {"ko": "의견이 너무 깁니다", "en": "The comment is too long"}[lang] in r.text(), (
                r.text()[:500]
            )
            with Store.open(db) as store:  # only the good vote of the Korean page's pass before this one
                assert len(store.votes_frame()) == (lang == "en") and len(store.ratings_frame()) == 2 * (lang == "en")
            ok = await s.call(
                submit, blind_vote="left", blind_score_0=4, blind_score_1=2, blind_criteria_0=["fluency"] * 50
            )
            assert ok.ok, ok.text()[:500]
    with Store.open(db) as store:
        ratings = store.ratings_frame()
    assert len(ratings) == 4 and sorted(len(c) for c in ratings["criteria"]) == [0, 0, 1, 1]
