"""Blind rounds: config validation, pairing and positions, the queue (balance, no repeats, quota),
judgements (first vote stands, failed answers refused, skips), status, and the round CLI."""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest
from pydantic import ValidationError

from arena import rounds
from arena.rounds.config import RoundConfig, RoundError
from arena.rounds.pairing import Item
from arena.store import RatingInput, RoundLocked, Store
from tests.rounds_helpers import (
    make_round,
    registry_of,
    server_models_yaml,
    shipped_dialogs,
    store_answers,
    with_annotators,
)

MODELS = ["m-alpha", "m-beta", "m-gamma", "m-delta"]


def config(**fields) -> RoundConfig:
    return RoundConfig.model_validate({"eval_sets": ["persona"], "models": MODELS, "annotators": ["kim"], **fields})


@pytest.fixture
def registry(tmp_path):
    return registry_of(server_models_yaml(tmp_path / "models.yaml", MODELS))


@pytest.fixture
def store(db_url: str):
    with Store.open(db_url) as s:
        yield with_annotators(s, "kim", "lee", "park")


# ------------------------------------------------------------------------------------ config and items


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"models": ["a", "a"]}, "listed twice"),
        ({"annotators": ["kim", "kim"]}, "listed twice"),
        ({"pairing": "sampled"}, "needs pairs_per_turn"),
        ({"pairing": "sampled", "pairs_per_turn": 7}, "exceeds the 6 possible pairs"),
        ({"pairing": "sampled", "pairs_per_turn": 1, "weights": {"nope": 2}}, "not in the round"),
        ({"pairing": "sampled", "pairs_per_turn": 1, "weights": {"m-alpha": 0}}, "positive"),
        ({"weights": {"m-alpha": 2}}, "sampled' only"),
        ({"models": ["solo"]}, "at least 2"),
        ({"judgements": 0}, "greater than or equal to 1"),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_config_validation(fields, message):
    with pytest.raises(ValidationError, match=message):
        config(**fields)


def test_all_pairs_cover_every_turn_and_pair_with_seeded_positions():
    dialogs = shipped_dialogs()
    cfg = config(seed=3)
    items = rounds.build_items(cfg, dialogs, secret="s1")
    turns = rounds.select_steps(cfg, dialogs)
    assert len(items) == len(turns) * 6 == rounds.count_items(cfg, dialogs) and len({it.key for it in items}) == len(
        items
    )
    for (_, s), group in zip(turns, (items[i : i + 6] for i in range(0, len(items), 6))):
        assert {(it.model_a, it.model_b) for it in group} == set(itertools.combinations(MODELS, 2))
        assert all((it.dialog_id, it.turn_index) == (s.dialog_id, s.turn_index) for it in group)
    # Model A is always the one listed first; the side it is shown on is drawn per item.
    assert all(MODELS.index(it.model_a) < MODELS.index(it.model_b) for it in items)
    left = Counter(it.a_position for it in items)
    assert set(left) == {"left", "right"} and 0.35 < left["left"] / len(items) < 0.65, left
    assert rounds.build_items(cfg, dialogs, secret="s1") == items  # reproducible
    other = rounds.build_items(config(seed=4), dialogs, secret="s1")
    assert [it.a_position for it in other] != [it.a_position for it in items]
    other_secret = rounds.build_items(cfg, dialogs, secret="s2")
    assert [it.a_position for it in other_secret] != [it.a_position for it in items]


def test_screen_sides_cannot_be_computed_from_the_public_seed(store, registry):
    # Issue 14 item 2: sides used to follow from code + seed alone (139 of 139 items computed offline).
    # Two rounds with the same config and seed get independent sides from their own secrets.
    rid1, cfg = make_round(store, registry, models=MODELS, eval_sets=["emotion"], seed=0)
    rid2, _ = make_round(store, registry, name="second", models=MODELS, eval_sets=["emotion"], seed=0)
    s1, s2 = store.get_round(rid1).secret, store.get_round(rid2).secret
    assert len(s1) == 32 and s1 != s2
    sides = [[it.a_position for it in rounds.load_items(store, r)] for r in (rid1, rid2)]
    assert sides[0] != sides[1]
    # What an annotator could compute offline (the old rule, or any guess of the secret) misses.
    offline = [it.a_position for it in rounds.build_items(cfg, shipped_dialogs(), secret="")]
    assert offline != sides[0]
    agree = sum(a == b for a, b in zip(offline, sides[0])) / len(offline)
    assert 0.2 < agree < 0.8, agree  # chance level, not a pattern


def test_left_and_right_models_follow_the_stored_position():
    it = Item("k", "s", "d", 1, "m-alpha", "m-beta", "right")
    assert (it.left_model, it.right_model) == ("m-beta", "m-alpha")
    assert rounds.screen_to_choice("left", "right") == "b" and rounds.screen_to_choice("right", "right") == "a"
    assert rounds.screen_to_choice("left", "left") == "a" and rounds.screen_to_choice("both_bad", "left") == "both_bad"
    with pytest.raises(RoundError):
        rounds.screen_to_choice("A", "left")


def test_subset_filters_keep_the_other_turns_as_they_were():
    dialogs = shipped_dialogs()
    full = {it.key: it for it in rounds.build_items(config(seed=9), dialogs, secret="s1")}
    subset = rounds.build_items(config(seed=9, dialogs=["persona-kimjihye-*"]), dialogs, secret="s1")
    assert subset and len(subset) < len(full)
    assert all(it.dialog_id.startswith("persona-kimjihye-") for it in subset)
    assert all(full[it.key] == it for it in subset)
    assert rounds.build_items(config(categories=["no-such-category"]), dialogs, secret="s1") == []


def test_sampled_pairing_draws_the_asked_number_of_pairs_weighted():
    dialogs = shipped_dialogs()
    cfg = RoundConfig(
        eval_sets=["persona", "dobae_qa", "instructions", "tool_calls"],
        models=MODELS,
        annotators=["kim"],
        pairing="sampled",
        pairs_per_turn=2,
        weights={"m-alpha": 6.0},
    )
    items = rounds.build_items(cfg, dialogs, secret="s1")
    turns = rounds.select_steps(cfg, dialogs)
    assert len(items) == 2 * len(turns)
    per_turn = Counter((it.dialog_id, it.turn_index) for it in items)
    assert set(per_turn.values()) == {2}
    seen = Counter(m for it in items for m in (it.model_a, it.model_b))
    # Weight 6 vs 1: pairs with m-alpha are 6x as likely as the others.
    assert seen["m-alpha"] > 1.5 * max(seen[m] for m in MODELS[1:]), seen
    assert len({(it.model_a, it.model_b) for it in items}) == 6  # the others still get drawn


# ------------------------------------------------------------------------------------ queue (pure)


def _items(n: int) -> list[Item]:
    return [Item(f"k{i}", "s", f"d{i}", 1, "m-alpha", "m-beta", "left") for i in range(n)]


def test_queue_balances_items_never_repeats_and_stops_at_quota():
    items, quota = _items(7), 2
    counts: Counter[str] = Counter()
    done: dict[str, set[str]] = {a: set() for a in ("kim", "lee", "park")}
    ready = {it.key for it in items} - {"k6"}  # k6's answers are not stored yet
    served = []
    for turn in itertools.count():
        annotator = ("kim", "lee", "park")[turn % 3]
        it = rounds.next_item(
            items, annotator=annotator, quota=quota, seed=1, counts=counts, done=done[annotator], ready=ready
        )
        if it is None:
            if all(
                rounds.next_item(items, annotator=a, quota=quota, seed=1, counts=counts, done=done[a], ready=ready)
                is None
                for a in done
            ):
                break
            continue
        # Balanced: nothing eligible had fewer judgements than the item served.
        eligible = [x for x in items if x.key in ready and x.key not in done[annotator] and counts[x.key] < quota]
        assert counts[it.key] == min(counts[x.key] for x in eligible)
        assert it.key not in done[annotator]
        served.append((annotator, it.key))
        done[annotator].add(it.key)
        counts[it.key] += 1
    assert len(served) == len(set(served))  # no annotator saw an item twice
    assert counts == Counter({f"k{i}": quota for i in range(6)})  # every ready item exactly at quota
    assert "k6" not in counts


def test_queue_order_differs_between_annotators():
    items = _items(20)
    firsts = {
        a: rounds.next_item(
            items, annotator=a, quota=1, seed=0, counts={}, done=set(), ready={it.key for it in items}
        ).key
        for a in ("kim", "lee", "park", "choi")
    }
    assert len(set(firsts.values())) > 1


# ------------------------------------------------------------------------------------ with the store


def test_create_validates_against_eval_sets_models_and_annotators(store, registry):
    dialogs = shipped_dialogs()
    with pytest.raises(RoundError, match="unknown eval set"):
        rounds.create_round(store, "x", config(eval_sets=["nope"]), dialogs=dialogs, registry=registry)
    with pytest.raises(RoundError, match="not in the models file"):
        rounds.create_round(store, "x", config(models=["m-alpha", "ghost"]), dialogs=dialogs, registry=registry)
    with pytest.raises(RoundError, match="unknown annotator"):
        rounds.create_round(store, "x", config(annotators=["kim", "ghost"]), dialogs=dialogs, registry=registry)
    with pytest.raises(RoundError, match="select no turns"):
        rounds.create_round(store, "x", config(dialogs=["zzz*"]), dialogs=dialogs, registry=registry)
    with pytest.raises(RoundError, match="reveals model"):
        rounds.create_round(store, "M-Beta vs others", config(), dialogs=dialogs, registry=registry)
    assert store.list_rounds() == []


def test_start_stores_items_with_positions_and_freezes_the_config(store, registry):
    rid, cfg = make_round(store, registry, models=MODELS, eval_sets=["emotion"], seed=11, judgements=2)
    stored = rounds.load_items(store, rid)
    assert stored == rounds.build_items(cfg, shipped_dialogs(), secret=store.get_round(rid).secret)
    assert store.get_round(rid).status == "running"
    with pytest.raises(RoundLocked):
        store.update_round_config(rid, {**cfg.stored(), "judgements": 5})
    assert rounds.start_round(store, rid, dialogs=[]) == len(stored)  # idempotent, items unchanged
    assert rounds.load_items(store, rid) == stored


def test_judging_first_vote_stands_and_ratings_come_with_it(store, registry):
    rid, _ = make_round(store, registry, judgements=2)
    store_answers(store, rid)
    a = rounds.next_assignment(store, rid, "kim")
    assert a is not None
    left, right = RatingInput(a.left_generation, 4, ["fluency"], "좋음"), RatingInput(a.right_generation, 2)
    assert rounds.submit_judgement(store, a, "kim", "left", left, right) is True
    # The same item again (a double click, a second tab): nothing changes, the first vote and scores stand.
    again = RatingInput(a.left_generation, 1), RatingInput(a.right_generation, 5)
    assert rounds.submit_judgement(store, a, "kim", "right", *again) is False
    votes = store.votes_frame(rid)
    assert len(votes) == 1
    row = votes.iloc[0]
    expected = "a" if a.item.a_position == "left" else "b"  # left won; stored relative to model A
    assert row["choice"] == expected and row["model_a"] == a.item.model_a
    assert row["a_position"] == a.item.a_position
    ratings = store.ratings_frame()
    assert sorted(ratings["score"]) == [2, 4] and len(ratings) == 2
    assert rounds.next_assignment(store, rid, "kim").item.key != a.item.key  # never served again
    with pytest.raises(RoundError, match="not part of this item"):
        rounds.submit_judgement(store, a, "lee", "tie", RatingInput(a.left_generation + 999, 3))


def test_vote_and_its_ratings_are_one_transaction(store, registry):
    rid, _ = make_round(store, registry)
    store_answers(store, rid)
    a = rounds.next_assignment(store, rid, "kim")
    vote = dict(
        round_id=rid,
        item_key=a.item.key,
        generation_a_id=a.generation_a,
        generation_b_id=a.generation_b,
        a_position=a.item.a_position,
        annotator="kim",
        choice="a",
    )
    with pytest.raises(ValueError, match="1-5"):
        store.record_vote(**vote, ratings=[(a.generation_a, 6, [], "")])
    with pytest.raises(LookupError):
        store.record_vote(**vote, ratings=[(a.generation_a, 3, [], ""), (999_999, 3, [], "")])
    assert store.votes_frame(rid).empty and store.ratings_frame().empty  # nothing half-written
    assert store.record_vote(**vote, ratings=[(a.generation_a, 3, [], ""), (a.generation_b, 4, [], "")]) is True
    assert sorted(store.ratings_frame()["score"]) == [3, 4]


def test_a_second_pregen_writer_never_replaces_a_stored_answer(store, registry):
    rid, _ = make_round(store, registry)
    model_id = store.list_models()[0].id
    key = dict(model_id=model_id, eval_set="emotion", dialog_id="d", turn_index=1, round_id=rid, keep_success=True)
    failed = store.record_generation(**key, error="[timeout] slow")
    ok = store.record_generation(**key, text="첫 답변")
    assert ok == failed and store.get_generation(ok).error is None  # a failed row is retried in place
    again = store.record_generation(**key, text="다른 답변")
    assert again == ok and store.get_generation(ok).text == "첫 답변"  # a success stays as judged
    assert store.record_generation(**{**key, "keep_success": False}, text="덮어씀") == ok
    assert store.get_generation(ok).text == "덮어씀"  # the default (replay) still overwrites


def test_concurrent_double_submit_counts_once(store, registry):
    rid, _ = make_round(store, registry)
    store_answers(store, rid)
    a = rounds.next_assignment(store, rid, "kim")
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        results.append(
            rounds.submit_judgement(
                store, a, "kim", "tie", RatingInput(a.left_generation, 3), RatingInput(a.right_generation, 3)
            )
        )

    threads = [threading.Thread(target=click) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [False, False, False, True]
    assert len(store.votes_frame(rid)) == 1 and len(store.ratings_frame()) == 2


def test_items_with_a_failed_answer_cannot_be_judged(store, registry):
    rid, _ = make_round(store, registry, models=MODELS[:3])
    store_answers(store, rid, failing={"m-gamma"})
    items = rounds.load_items(store, rid)
    ok = [it for it in items if "m-gamma" not in (it.model_a, it.model_b)]
    assert rounds.annotator_progress(store, rid, "kim") == (0, len(ok))  # failed items are not open
    served = set()
    while (a := rounds.next_assignment(store, rid, "kim")) is not None:
        served.add(a.item.key)
        rounds.submit_judgement(
            store, a, "kim", "left", RatingInput(a.left_generation, 3), RatingInput(a.right_generation, 3)
        )
    assert served == {it.key for it in ok}
    assert rounds.annotator_progress(store, rid, "kim") == (len(ok), 0)
    # Forcing a vote on an item with the failed answer is refused by the store itself.
    bad = next(it for it in items if "m-gamma" in (it.model_a, it.model_b))
    answers = rounds.Answers.load(store, rid)
    forced = rounds.Assignment(rid, bad, answers.get(bad, bad.left_model)[0], answers.get(bad, bad.right_model)[0])
    with pytest.raises(ValueError, match="failed"):
        rounds.submit_judgement(store, forced, "lee", "left")
    with pytest.raises(ValueError, match="failed"):
        store.save_ratings("lee", [(answers.get(bad, "m-gamma")[0], 3, [], "")])
    assert len(store.votes_frame(rid)) == len(ok)
    status = rounds.round_status(store, rid)
    assert status.items_failed == len(items) - len(ok) and status.answers_failed == len(
        rounds.select_steps(rounds.load_config(store, rid)[1], shipped_dialogs())
    )


def test_skips_are_per_annotator_and_do_not_count_towards_quota(store, registry):
    rid, _ = make_round(store, registry, judgements=1)
    store_answers(store, rid)
    first = rounds.next_assignment(store, rid, "kim")
    assert rounds.skip_item(store, first, "kim", "  답변이 너무 짧아요  ") is True
    assert rounds.skip_item(store, first, "kim", "again") is False
    assert rounds.next_assignment(store, rid, "kim").item.key != first.item.key
    lee = _drain(store, rid, "lee")
    assert first.item.key in {a.item.key for a in lee}  # kim's skip left the item's quota open
    skips = store.skips_frame(rid)
    assert list(skips["reason"]) == ["답변이 너무 짧아요"] and list(skips["annotator"]) == ["kim"]
    # A voted item cannot be skipped afterwards.
    assert rounds.skip_item(store, lee[0], "lee", "changed my mind") is False
    assert len(store.skips_frame(rid)) == 1


def _drain(store: Store, rid: int, annotator: str) -> list[rounds.Assignment]:
    out = []
    while (a := rounds.next_assignment(store, rid, annotator)) is not None:
        rounds.submit_judgement(store, a, annotator, "both_bad")
        out.append(a)
    return out


def test_quota_is_reached_evenly_across_annotators(store, registry):
    rid, _ = make_round(store, registry, models=MODELS[:3], judgements=2, annotators=["kim", "lee", "park"])
    store_answers(store, rid)
    n_items = len(rounds.load_items(store, rid))
    kim = _drain(store, rid, "kim")
    assert len(kim) == n_items  # each item once, none twice
    lee = _drain(store, rid, "lee")
    park = _drain(store, rid, "park")
    assert len(lee) == n_items and park == []  # quota 2 reached everywhere; park gets nothing
    status = rounds.round_status(store, rid)
    assert status.items_done == status.items == n_items and status.votes == 2 * n_items
    assert status.per_annotator == {
        "kim": {"votes": n_items, "skips": 0},
        "lee": {"votes": n_items, "skips": 0},
        "park": {"votes": 0, "skips": 0},
    }
    assert sum(c["votes"] for c in status.per_pair.values()) == 2 * n_items
    assert set(status.per_pair) == {("m-alpha", "m-beta"), ("m-alpha", "m-gamma"), ("m-beta", "m-gamma")}
    assert "kim: " in status.text() and "m-alpha vs m-beta" in status.text()


def test_only_listed_annotators_judge_running_rounds(store, registry):
    rid, _ = make_round(store, registry, annotators=["kim"], start=False)
    with pytest.raises(RoundError, match="draft"):
        rounds.next_assignment(store, rid, "kim")
    rounds.start_round(store, rid, dialogs=shipped_dialogs())
    store_answers(store, rid)
    with pytest.raises(RoundError, match="not an annotator"):
        rounds.next_assignment(store, rid, "lee")
    assert rounds.rounds_for(store, "kim") == ["r1"] and rounds.rounds_for(store, "lee") == []
    a = rounds.next_assignment(store, rid, "kim")
    store.close_round(rid)
    with pytest.raises(RoundError, match="closed"):
        rounds.submit_judgement(store, a, "kim", "left")
    assert rounds.rounds_for(store, "kim") == []


# ------------------------------------------------------------------------------------ CLI


def test_round_cli_create_start_status(tmp_path, capsys, registry):
    from arena.cli import main

    db = str(tmp_path / "cli.db")
    with Store.open(db) as s:
        with_annotators(s, "kim", "lee")
    models = str(registry.source)
    spec = tmp_path / "round.yaml"
    spec.write_text("eval_sets: [emotion]\nmodels: [m-alpha, m-beta, m-gamma]\njudgements: 2\n", encoding="utf-8")
    assert (
        main(
            [
                "round",
                "create",
                "주간-1",
                "--file",
                str(spec),
                "--annotators",
                "kim,lee",
                "--seed",
                "5",
                "--max-tokens",
                "16",
                "--config",
                models,
                "--db",
                db,
            ]
        )
        == 0
    )
    assert "12 items" in capsys.readouterr().out
    assert (
        main(
            [
                "round",
                "create",
                "bad",
                "--eval-set",
                "emotion",
                "--models",
                "m-alpha",
                "--annotators",
                "kim",
                "--config",
                models,
                "--db",
                db,
            ]
        )
        == 2
    )
    assert "models" in capsys.readouterr().err
    assert main(["round", "start", "주간-1", "--db", db]) == 0
    assert main(["round", "status", "주간-1", "--db", db]) == 0
    out = capsys.readouterr().out
    assert (
        "0 done / 12 total" in out and "0 stored / 12 needed" in out and "m-alpha vs m-gamma: 0 votes / 4 items" in out
    )
    assert main(["round", "list", "--db", db]) == 0
    assert "주간-1\trunning" in capsys.readouterr().out
    with Store.open(db) as s:
        stored = s.get_round("주간-1")
    assert stored.seed == 5 and stored.config["options"] == {"max_tokens": 16}
    assert stored.config["annotators"] == ["kim", "lee"] and stored.config["judgements"] == 2


def test_queue_state_counts_votes_per_item_and_the_annotators_own_judgements(store, registry):
    rid, _ = make_round(store, registry, models=MODELS[:3], judgements=3, annotators=["kim", "lee", "park"])
    store_answers(store, rid)
    kim = rounds.next_assignment(store, rid, "kim")
    rounds.submit_judgement(store, kim, "kim", "left")
    lee = rounds.next_assignment(store, rid, "lee")
    rounds.submit_judgement(store, lee, "lee", "tie")
    skipped = rounds.next_assignment(store, rid, "kim")
    rounds.skip_item(store, skipped, "kim", "모르겠어요")
    state = store.round_queue_state(rid, "kim")
    expected = Counter([kim.item.key, lee.item.key])
    assert state.counts == dict(expected)  # skips do not count towards an item's votes
    assert state.mine == {kim.item.key, skipped.item.key} and state.voted == 1
    kim_choice = "a" if kim.item.a_position == "left" else "b"  # the left answer won
    if kim.item.key == lee.item.key:
        assert state.choices == {kim.item.key: {kim_choice: 1, "tie": 1}}
    else:
        assert state.choices == {kim.item.key: {kim_choice: 1}, lee.item.key: {"tie": 1}}
    assert store.round_queue_state(rid, "park")[:3] == (dict(expected), set(), 0)
    assert store.round_queue_state(rid, "nobody")[:3] == (dict(expected), set(), 0)


def test_round_cache_keeps_a_round_only_once_every_answer_is_in(store, registry):
    rid, _ = make_round(store, registry, models=MODELS[:3])
    cache = rounds.RoundCache()
    store_answers(store, rid, failing={"m-gamma"})
    assert rounds.annotator_progress(store, rid, "kim", cache)[1] < len(rounds.load_items(store, rid))
    # Pre-generation retries the failed answers: a round not yet final is read again, not served stale.
    store_answers(store, rid)
    items = rounds.load_items(store, rid)
    assert rounds.annotator_progress(store, rid, "kim", cache) == (0, len(items))
    reads: list[int] = []
    original = store.round_generations
    store.round_generations = lambda round_id: reads.append(round_id) or original(round_id)  # type: ignore[method-assign]
    a = rounds.queue_view(store, rid, "kim", cache=cache).next()
    rounds.submit_judgement(store, a, "kim", "left")
    # Final now: votes still come from the store, answers no longer.
    assert rounds.annotator_progress(store, rid, "kim", cache) == (1, len(items) - 1)
    assert reads == []
