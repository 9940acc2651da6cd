"""Migrations: a blank database (SQLite and PostgreSQL) migrates to a schema equal to the models."""

from __future__ import annotations

import sqlalchemy as sa

from arena.store import Store, migrate
from arena.store.models import Base

EXPECTED_TABLES = {
    "annotators",
    "models",
    "rounds",
    "generations",
    "ratings",
    "votes",
    "round_items",
    "skips",
    "recall_queries",
    "sessions",
    "rating_revisions",
}

EXPECTED_UNIQUE = {
    "annotators": {("name",)},
    "models": {("name",)},
    "rounds": {("name",)},
    "generations": {("eval_set", "dialog_id", "turn_index", "model_id", "context", "revision")},
    "ratings": {("generation_id", "annotator_id")},
    "votes": {("round_id", "item_key", "annotator_id")},
    "round_items": {("round_id", "item_key")},
    "skips": {("round_id", "item_key", "annotator_id")},
    "recall_queries": {("model_id", "eval_set", "item_id", "prompt_hash")},
    "sessions": {("token_hash",)},
    "rating_revisions": set(),
}


def test_revisions_are_one_ordered_named_chain() -> None:
    revs = migrate.revisions()
    assert revs[0] == "0001_initial"
    assert revs[-1] == migrate.head()
    # Names sort in the order they apply: NNNN_ prefixes, no gaps, no branches.
    assert [int(r.split("_", 1)[0]) for r in revs] == list(range(1, len(revs) + 1))


def test_blank_database_migrates_to_the_models(db_url: str) -> None:
    store = Store.open(db_url, upgrade=False)
    try:
        assert store.current_revision() is None
        assert sa.inspect(store.engine).get_table_names() == []

        store.upgrade()
        assert store.current_revision() == migrate.head()

        inspector = sa.inspect(store.engine)
        assert set(inspector.get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
        for table in EXPECTED_TABLES:
            model_columns = {c.name for c in Base.metadata.tables[table].columns}
            db_columns = {c["name"] for c in inspector.get_columns(table)}
            assert db_columns == model_columns, table
            unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
            assert unique == EXPECTED_UNIQUE[table], table
        nullable = {c["name"]: c["nullable"] for c in inspector.get_columns("generations")}
        assert nullable["round_id"] is True and nullable["context"] is False
        checks = {c["name"] for c in inspector.get_check_constraints("ratings")}
        assert "ck_ratings_score" in checks

        assert migrate.schema_diff(store.engine) == []
    finally:
        store.close()


def test_upgrade_is_idempotent_and_downgrade_drops_everything(db_url: str) -> None:
    with Store.open(db_url) as store:
        store.upgrade()  # a second run is a no-op, not an error
        assert store.current_revision() == migrate.head()
        migrate.downgrade(store.engine, "base")
        assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert store.current_revision() is None
        store.upgrade()
        assert migrate.schema_diff(store.engine) == []


def test_schema_diff_notices_a_missing_column(tmp_path) -> None:
    # Guards the guard: compare_metadata must report drift, or the test above proves nothing.
    with Store.open(tmp_path / "r.db") as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE generations DROP COLUMN tokens_per_s")
        diff = migrate.schema_diff(store.engine)
    assert any(d[0] == "add_column" and d[3].name == "tokens_per_s" for d in diff), diff


def _cli(argv: list[str]) -> int:
    import argparse

    from arena.commands import db

    parser = argparse.ArgumentParser(prog="arena")
    db.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_db_upgrade_and_current(tmp_path, capsys) -> None:
    main = _cli
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "current", "--db", url]) == 0
    assert "(none)" in capsys.readouterr().out
    assert not (tmp_path / "cli.db").exists()  # looking did not create it
    assert main(["db", "upgrade", "--db", url]) == 0
    assert migrate.head() in capsys.readouterr().out
    assert main(["db", "current", "--db", url]) == 0
    assert f"{migrate.head()} (head)" in capsys.readouterr().out


def test_style_counts_are_stored_and_backfilled(db_url: str) -> None:
    """Answers stored before 0005 get their style counts from the migration; new ones at write time."""
    text = "## 추천\n\n1. **코트** 는 따뜻합니다\n- 가격: 5만 원\n```\n# 코드 안의 헤더\n```"
    with Store.open(db_url) as store:
        model = store.upsert_model("m", backend="local")
        gid = store.record_generation(model_id=model, eval_set="e", dialog_id="d", turn_index=1, text=text)
        written = store.generations_frame().set_index("generation_id").loc[gid]
        migrate.downgrade(store.engine, "0004_accounts_secrets_revisions")
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("generations")}
        assert "style_length" not in columns
        store.upgrade()
        back = store.generations_frame().set_index("generation_id").loc[gid]
    expected = {
        "style_length": len(text) - text.count(" ") - text.count("\n"),
        "style_headers": 1,
        "style_lists": 2,
        "style_bold": 1,
    }
    assert {k: int(written[k]) for k in expected} == expected
    assert {k: int(back[k]) for k in expected} == expected
