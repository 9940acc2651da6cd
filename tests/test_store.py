"""The Store against SQLite and a real PostgreSQL: every method, the upserts, the atomicity, the guards."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import sqlalchemy as sa

from arena.core.answers import Context
from arena.store import (
    AlreadyExists,
    ItemClosed,
    NotFound,
    RatingInput,
    RoundItemInput,
    RoundLocked,
    Store,
    stable_hash,
    to_url,
)


@pytest.fixture
def store(db_url: str):
    with Store.open(db_url) as s:
        yield s


@pytest.fixture
def two_gens(store: Store) -> tuple[int, int]:
    m1 = store.upsert_model("polyglot-ko-tiny", backend="local", base_model="tiny-neox")
    m2 = store.upsert_model("llama-tiny-lora", backend="local", base_model="tiny-llama", adapter="adapters/v1")
    where = dict(eval_set="fashion", dialog_id="coat-01", turn_index=3)
    g1 = store.record_generation(model_id=m1, **where, text="코트는 외투입니다.")
    g2 = store.record_generation(model_id=m2, **where, text="코트는 옷입니다.")
    return g1, g2


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# -- annotators -------------------------------------------------------------------------------------


def test_annotators_passwords_are_salted_hashes(store: Store) -> None:
    kim = store.add_annotator("kim", "s3cret!")
    lee = store.add_annotator("lee", "s3cret!", role="researcher")
    assert kim != lee
    assert store.verify_password("kim", "s3cret!")
    assert not store.verify_password("kim", "s3cret")
    assert not store.verify_password("nobody", "s3cret!")
    a, b = store.get_annotator("kim"), store.get_annotator(lee)
    assert a is not None and b is not None and b.name == "lee" and b.role == "researcher"
    assert "s3cret" not in a.password_hash and a.password_hash.startswith("scrypt$")
    assert a.password_hash != b.password_hash  # same password, different salt
    assert a.created_at.tzinfo is not None
    assert store.get_annotator("nobody") is None


def test_annotator_name_is_unique_and_inputs_checked(store: Store) -> None:
    store.add_annotator("kim", "pw")
    with pytest.raises(AlreadyExists):
        store.add_annotator("kim", "other")
    with pytest.raises(ValueError):
        store.add_annotator("park", "pw", role="admin")
    with pytest.raises(ValueError):
        store.add_annotator("  ", "pw")
    assert [a.name for a in store.list_annotators()] == ["kim"]
    assert store.verify_password("kim", "pw")  # the failed add changed nothing
    store.set_password("kim", "new")
    assert store.verify_password("kim", "new") and not store.verify_password("kim", "pw")


# -- models and generations -------------------------------------------------------------------------


def test_upsert_model_updates_only_on_change(store: Store) -> None:
    first = store.upsert_model("m", backend="openai", config={"url": "http://x", "temperature": 0})
    before = store.get_model("m")
    same = store.upsert_model("m", backend="openai", config={"temperature": 0, "url": "http://x"})
    assert same == first
    assert store.get_model("m").updated_at == before.updated_at  # key order is not a change
    again = store.upsert_model("m", backend="openai", config={"url": "http://x", "temperature": 0.7})
    after = store.get_model(first)
    assert again == first and _count(store, "models") == 1
    assert after.config == {"url": "http://x", "temperature": 0.7}
    assert after.config_hash == stable_hash({"temperature": 0.7, "url": "http://x"}) != before.config_hash
    assert after.updated_at > before.updated_at


def test_regeneration_updates_the_same_row(store: Store) -> None:
    m = store.upsert_model("m", backend="local")
    kw = dict(model_id=m, eval_set="dobae", dialog_id="q-7", turn_index=1)
    g = store.record_generation(**kw, text="첫 답", tool_calls=None, tokens=3)
    again = store.record_generation(
        **kw,
        text="둘째 답",
        tool_calls=[{"type": "function", "function": {"name": "search", "arguments": '{"q": "도배"}'}}],
        finish_reason="tool_calls",
        ttft_ms=12.5,
        total_ms=80.0,
        tokens=9,
        tokens_per_s=112.5,
        gt_diff=[["-", "첫"], ["+", "둘째"]],
        similarity=0.42,
        tool_name_match=True,
        tool_args_match=False,
    )
    assert again == g and _count(store, "generations") == 1
    row = store.get_generation(g)
    assert row.text == "둘째 답" and row.tokens == 9 and row.similarity == pytest.approx(0.42)
    assert row.tool_calls[0]["function"]["arguments"] == '{"q": "도배"}'
    assert row.gt_diff == [["-", "첫"], ["+", "둘째"]]
    assert row.tool_name_match is True and row.tool_args_match is False
    # live and replay are separate rows, and so is each round's copy.
    live = store.record_generation(**kw, context="live", text="live")
    rid = store.create_round("r1", {"models": ["m"]})
    in_round = store.record_generation(**kw, round_id=rid, text="round")
    in_round_again = store.record_generation(**kw, round_id=rid, text="round 2")
    assert len({g, live, in_round}) == 3 and in_round_again == in_round
    assert store.get_generation(in_round).context == f"round:{rid}"
    assert _count(store, "generations") == 3
    store.set_generation_metrics(live, similarity=1.0, tool_name_match=True)
    assert store.get_generation(live).similarity == 1.0
    with pytest.raises(NotFound):
        store.set_generation_metrics(10_000, similarity=1.0)


def test_foreign_keys_are_enforced(store: Store) -> None:
    # On SQLite this only holds because engine.py turns PRAGMA foreign_keys on for every connection.
    with pytest.raises(sa.exc.IntegrityError):
        store.record_generation(model_id=999, eval_set="e", dialog_id="d", turn_index=0, text="x")
    assert _count(store, "generations") == 0


# -- ratings ----------------------------------------------------------------------------------------


def test_save_ratings_inserts_then_updates(store: Store, two_gens: tuple[int, int]) -> None:
    g1, g2 = two_gens
    store.add_annotator("kim", "pw")
    ids = store.save_ratings("kim", [(g1, 4, ["fluent"], "좋음"), RatingInput(g2, 2, ["hallucination"])])
    first = store.ratings_frame().set_index("rating_id")
    ids_again = store.save_ratings("kim", [(g1, 5, ["fluent", "accurate"], "더 좋음"), (g2, 1, [], "")])
    assert ids_again == ids and _count(store, "ratings") == 2
    frame = store.ratings_frame().set_index("rating_id")
    assert frame.loc[ids[0], "score"] == 5 and frame.loc[ids[0], "criteria"] == ["fluent", "accurate"]
    assert frame.loc[ids[0], "comment"] == "더 좋음" and frame.loc[ids[1], "score"] == 1
    assert (frame["created_at"] == first["created_at"]).all()
    assert (frame["updated_at"] > first["updated_at"]).all()
    assert set(frame["model"]) == {"polyglot-ko-tiny", "llama-tiny-lora"}
    # A second annotator's rating of the same generation is a new row.
    store.add_annotator("lee", "pw")
    store.save_ratings("lee", [(g1, 3, [], "")])
    assert _count(store, "ratings") == 3


def test_save_ratings_is_all_or_nothing(store: Store, two_gens: tuple[int, int]) -> None:
    g1, g2 = two_gens
    store.add_annotator("kim", "pw")
    with pytest.raises(NotFound):
        store.save_ratings("kim", [(g1, 4, [], ""), (g2 + 1000, 4, [], "")])
    with pytest.raises(ValueError):
        store.save_ratings("kim", [(g1, 4, [], ""), (g2, 6, [], "")])
    with pytest.raises(ValueError):
        store.save_ratings("kim", [(g1, 4, [], ""), (g1, 3, [], "")])
    with pytest.raises(NotFound):
        store.save_ratings("nobody", [(g1, 4, [], "")])
    assert _count(store, "ratings") == 0


def test_database_checks_score_even_without_the_store(store: Store, two_gens: tuple[int, int]) -> None:
    kim = store.add_annotator("kim", "pw")
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ratings (generation_id, annotator_id, score, criteria, comment,"
                " created_at, updated_at) VALUES (:g, :a, 9, '[]', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"g": two_gens[0], "a": kim},
        )
    assert _count(store, "ratings") == 0


# -- rounds and votes -------------------------------------------------------------------------------


def test_round_config_is_frozen_once_started(store: Store) -> None:
    rid = store.create_round("week-1", {"models": ["a", "b"], "eval_sets": ["fashion"]}, seed=7)
    with pytest.raises(AlreadyExists):
        store.create_round("week-1", {})
    store.update_round_config("week-1", {"models": ["a", "b", "c"]}, seed=8)
    draft = store.get_round(rid)
    assert draft.status == "draft" and draft.started_at is None and draft.seed == 8
    store.start_round(rid)
    store.start_round("week-1")  # idempotent
    running = store.get_round("week-1")
    assert running.status == "running" and running.started_at is not None
    with pytest.raises(RoundLocked):
        store.update_round_config(rid, {"models": ["z"]})
    assert store.get_round(rid).config == {"models": ["a", "b", "c"]}
    store.close_round(rid)
    with pytest.raises(RoundLocked):
        store.start_round(rid)
    with pytest.raises(NotFound):
        store.start_round("nope")
    assert [r.name for r in store.list_rounds()] == ["week-1"]


def test_votes_first_one_stands(store: Store, two_gens: tuple[int, int]) -> None:
    g1, g2 = two_gens
    store.add_annotator("kim", "pw")
    store.add_annotator("lee", "pw")
    rid = store.create_round("r", {})
    vote = dict(round_id=rid, item_key="fashion/coat-01/3", generation_a_id=g1, generation_b_id=g2, a_position="right")
    with pytest.raises(RoundLocked):  # draft rounds take no votes
        store.record_vote(**vote, annotator="kim", choice="a")
    store.start_round(rid)
    assert store.record_vote(**vote, annotator="kim", choice="a") is True
    assert store.record_vote(**vote, annotator="kim", choice="b") is False
    assert store.record_vote(**vote, annotator="lee", choice="tie") is True
    with pytest.raises(ValueError):
        store.record_vote(**{**vote, "item_key": "x"}, annotator="kim", choice="maybe")
    assert store.voted_items(rid, "kim") == {"fashion/coat-01/3"}
    frame = store.votes_frame(rid)
    assert list(frame["choice"]) == ["a", "tie"]
    assert list(frame["annotator"]) == ["kim", "lee"]
    assert set(frame["model_a"]) == {"polyglot-ko-tiny"} and set(frame["model_b"]) == {"llama-tiny-lora"}
    assert set(frame["a_position"]) == {"right"}
    store.close_round(rid)
    with pytest.raises(RoundLocked):
        store.record_vote(**{**vote, "item_key": "y"}, annotator="kim", choice="a")
    assert _count(store, "votes") == 2


# -- frames -----------------------------------------------------------------------------------------


def test_frames_of_an_empty_store_have_their_columns(store: Store) -> None:
    for frame, column in [
        (store.ratings_frame(), "score"),
        (store.votes_frame(), "choice"),
        (store.generations_frame(), "tokens_per_s"),
    ]:
        assert frame.empty and column in frame.columns


def test_generations_frame_types(store: Store, two_gens: tuple[int, int]) -> None:
    frame = store.generations_frame()
    assert len(frame) == 2 and list(frame["text"]) == ["코트는 외투입니다.", "코트는 옷입니다."]
    assert frame["tokens_per_s"].dtype == "float64"  # all NULL, still numeric
    assert str(frame["tool_name_match"].dtype) == "boolean"
    assert isinstance(frame["created_at"].dtype, pd.DatetimeTZDtype)
    assert (frame["created_at"] <= pd.Timestamp(dt.datetime.now(dt.UTC))).all()


# -- opening and the CLI ----------------------------------------------------------------------------


def test_open_accepts_paths_and_urls(tmp_path, monkeypatch) -> None:
    assert to_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert to_url(tmp_path / "a.db").drivername == "sqlite"
    monkeypatch.chdir(tmp_path)
    with Store.open() as s:  # default: ./ratings.db
        s.add_annotator("kim", "pw")
    assert (tmp_path / "ratings.db").exists()
    with Store.open("sub/dir/x.db") as s:
        assert s.list_annotators() == []
    assert (tmp_path / "sub" / "dir" / "x.db").exists()
    with Store.open(tmp_path / "ratings.db") as s:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert s.verify_password("kim", "pw")


def _annotators_cli(argv: list[str]) -> int:
    from arena.cli import main

    return main(argv)


def test_annotators_cli(tmp_path, capsys) -> None:
    db = str(tmp_path / "r.db")
    assert _annotators_cli(["annotators", "add", "kim", "--db", db]) == 0
    out = capsys.readouterr().out
    password = out.split("password: ")[1].strip()
    assert len(password) >= 12
    lee = ["annotators", "add", "lee", "--password", "pw", "--role", "researcher", "--db", db]
    assert _annotators_cli(lee) == 0
    assert "password:" not in capsys.readouterr().out
    assert _annotators_cli(["annotators", "add", "kim", "--db", db]) == 2
    assert "arena annotators: annotator 'kim' already exists" in capsys.readouterr().err
    assert _annotators_cli(["annotators", "list", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["kim", "annotator"], ["lee", "researcher"]]
    with Store.open(db) as s:
        assert s.verify_password("kim", password) and s.verify_password("lee", "pw")


def test_a_rated_answer_is_never_rewritten(store: Store) -> None:
    # Issue 14 item 9: reopening a replay turn rewrote the rated row, so the rating pointed at new text.
    m = store.upsert_model("m", backend="local")
    store.add_annotator("ann", "pw")
    kw = dict(model_id=m, eval_set="dobae", dialog_id="q-7", turn_index=1, context="replay:ann")
    first = store.record_generation(**kw, text="평가한 답")
    store.save_ratings("ann", [(first, 4, [], "좋아요")])
    again = store.record_generation(**kw, text="새 답")
    assert again != first and _count(store, "generations") == 2
    assert store.get_generation(first).text == "평가한 답"
    assert (store.get_generation(first).revision, store.get_generation(again).revision) == (0, 1)
    # An unrated revision is still rewritten in place: regenerating twice adds one row, not two.
    third = store.record_generation(**kw, text="셋째 답")
    assert third == again and store.get_generation(again).text == "셋째 답"


def test_rated_steps_count_only_the_given_context(store: Store) -> None:
    # Matched by prefix before (issue 22 found it): replay:ann also took in the answers of replay:ann2.
    m = store.upsert_model("m", backend="local")
    store.add_annotator("ann", "pw")
    mine = store.record_generation(model_id=m, eval_set="e", dialog_id="d", turn_index=1, context="replay:ann")
    other = store.record_generation(model_id=m, eval_set="e", dialog_id="d", turn_index=3, context="replay:ann2")
    store.save_ratings("ann", [(mine, 4, [], ""), (other, 2, [], "")])
    assert store.rated_steps("ann", "e", Context.replay("ann")) == {("d", 1)}
    assert store.rated_steps("ann", "e", "replay:ann2") == {("d", 3)}


def test_a_voted_answer_is_never_rewritten_by_pregeneration(store: Store) -> None:
    m1, m2 = store.upsert_model("m1", backend="local"), store.upsert_model("m2", backend="local")
    store.add_annotator("ann", "pw")
    rid = store.create_round("r", {"models": ["m1", "m2"]})
    store.start_round(rid)
    kw = dict(eval_set="e", dialog_id="d", turn_index=1, round_id=rid)
    a = store.record_generation(**kw, model_id=m1, text="A 답")
    b = store.record_generation(**kw, model_id=m2, text="B 답")
    assert store.record_vote(
        round_id=rid, item_key="k", generation_a_id=a, generation_b_id=b, a_position="left", annotator="ann", choice="a"
    )
    redo = store.record_generation(**kw, model_id=m1, text="다른 답")
    assert redo != a and store.get_generation(a).text == "A 답"


def test_editing_a_rating_keeps_the_earlier_version(store: Store) -> None:
    # Issue 15 item 4: re-rating replaced score, criteria and comment without a trace.
    m = store.upsert_model("m", backend="local")
    store.add_annotator("ann", "pw")
    g = store.record_generation(model_id=m, eval_set="e", dialog_id="d", turn_index=1, text="답")
    (rid,) = store.save_ratings("ann", [(g, 2, ["fluency"], "어색한 문장")])
    assert store.save_ratings("ann", [(g, 2, ["fluency"], "어색한 문장")]) == [rid]  # unchanged: no history
    assert store.rating_history(rid) == []
    store.save_ratings("ann", [(g, 5, [], "다시 보니 좋음")])
    (old,) = store.rating_history(rid)
    assert (old.score, old.criteria, old.comment) == (2, ["fluency"], "어색한 문장")
    frame = store.ratings_frame()
    assert list(frame["score"]) == [5] and list(frame["comment"]) == ["다시 보니 좋음"]


def _quota_round(store: Store, judgements: int, keys: list[str]) -> tuple[int, int, int]:
    m1, m2 = store.upsert_model("m1", backend="local"), store.upsert_model("m2", backend="local")
    rid = store.create_round("quota", {"models": ["m1", "m2"], "judgements": judgements})
    store.start_round(rid, [RoundItemInput(k, n, "e", "d", 1, m1, m2, "left") for n, k in enumerate(keys)])
    a = store.record_generation(model_id=m1, eval_set="e", dialog_id="d", turn_index=1, round_id=rid, text="가")
    b = store.record_generation(model_id=m2, eval_set="e", dialog_id="d", turn_index=1, round_id=rid, text="나")
    return rid, a, b


def _at_once(*calls):
    """Run the calls in threads released together; each result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_an_items_quota_holds_against_concurrent_votes(store: Store) -> None:
    # Issue 14 item 9: two annotators could both vote on an item whose quota is one.
    names = [f"ann{i}" for i in range(4)]
    for n in names:
        store.add_annotator(n, "pw")
    rid, a, b = _quota_round(store, 1, [f"k{i}" for i in range(5)])
    for i in range(5):
        results = _at_once(
            *[
                lambda n=n, i=i: store.record_vote(
                    round_id=rid,
                    item_key=f"k{i}",
                    generation_a_id=a,
                    generation_b_id=b,
                    a_position="left",
                    annotator=n,
                    choice="a",
                )
                for n in names
            ]
        )
        assert results.count(True) == 1, results
        assert all(isinstance(r, ItemClosed) and r.reason == "quota" for r in results if r is not True), results
    votes = store.votes_frame(rid)
    assert votes.groupby("item_key").size().max() == 1 and len(votes) == 5


def test_a_skipped_item_takes_no_vote_from_the_same_annotator(store: Store) -> None:
    # Issue 14 item 9: skip in one tab and vote in another stored both.
    store.add_annotator("ann", "pw")
    rid, a, b = _quota_round(store, 3, [f"k{i}" for i in range(5)])
    assert store.record_skip(round_id=rid, item_key="k0", annotator="ann", reason="모름")
    with pytest.raises(ItemClosed, match="skipped"):
        store.record_vote(
            round_id=rid,
            item_key="k0",
            generation_a_id=a,
            generation_b_id=b,
            a_position="left",
            annotator="ann",
            choice="a",
        )
    for i in range(1, 5):  # both at once: exactly one of them is stored
        vote, skip = _at_once(
            lambda i=i: store.record_vote(
                round_id=rid,
                item_key=f"k{i}",
                generation_a_id=a,
                generation_b_id=b,
                a_position="left",
                annotator="ann",
                choice="a",
            ),
            lambda i=i: store.record_skip(round_id=rid, item_key=f"k{i}", annotator="ann", reason="모름"),
        )
        assert (vote is True) != (skip is True), (vote, skip)
    stored = len(store.votes_frame(rid)) + len(store.skips_frame(rid))
    assert stored == 5
