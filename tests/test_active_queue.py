"""Active sampling in blind rounds: the queue keeps every guarantee of the uniform one (quotas, no repeats,
skips, several annotators at once, a restart in the middle) on SQLite and PostgreSQL, and it spends votes on
the pairs whose order is still open."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from arena import rounds
from arena.rounds.pairing import Item
from arena.rounds.queue import pair_outcomes
from arena.stats.active import Estimate, pair_priorities, win_matrix
from arena.store import ItemClosed, Store
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, store_answers, with_annotators

MODELS = ["m-alpha", "m-beta", "m-gamma", "m-delta"]
ANNOTATORS = ["kim", "lee", "park"]


@pytest.fixture
def registry(tmp_path):
    return registry_of(server_models_yaml(tmp_path / "models.yaml", MODELS))


@pytest.fixture
def store(db_url: str):
    with Store.open(db_url) as s:
        yield with_annotators(s, *ANNOTATORS)


def _active_round(store, registry, name: str = "r1", **fields):
    fields = {"models": MODELS, "judgements": 2, "annotators": ANNOTATORS, "sampling": "active", **fields}
    rid, config = make_round(store, registry, name, **fields)
    store_answers(store, rid)
    return rid, config


def _vote(store, a: rounds.Assignment, annotator: str) -> bool:
    # A stronger model wins: the left/right screen side of the better model (alphabetical = weaker here).
    better = max((a.item.left_model, a.item.right_model), key=MODELS.index)
    return rounds.submit_judgement(store, a, annotator, "left" if a.item.left_model == better else "right")


def _drain(store, rid, annotator: str) -> list[str]:
    served = []
    while (a := rounds.next_assignment(store, rid, annotator)) is not None:
        assert _vote(store, a, annotator)
        served.append(a.item.key)
    return served


def test_active_queue_meets_quota_never_repeats_and_leaves_nothing(store, registry):
    rid, _ = _active_round(store, registry)
    keys = [it.key for it in rounds.load_items(store, rid)]
    kim, lee = _drain(store, rid, "kim"), _drain(store, rid, "lee")
    assert sorted(kim) == sorted(keys) and sorted(lee) == sorted(keys)  # every item once for each
    assert _drain(store, rid, "park") == []  # quota 2 reached everywhere
    votes = store.votes_frame(rid)
    assert Counter(votes["item_key"]) == Counter({k: 2 for k in keys})
    assert not votes.duplicated(["item_key", "annotator"]).any()


def test_active_queue_honours_skips(store, registry):
    rid, _ = _active_round(store, registry, judgements=1)
    first = rounds.next_assignment(store, rid, "kim")
    assert rounds.skip_item(store, first, "kim", "판단하기 어려워요")
    kim = _drain(store, rid, "kim")
    assert first.item.key not in kim  # never served again to the one who skipped it
    assert _drain(store, rid, "lee") == [first.item.key]  # and still open to the others


def test_active_queue_with_annotators_at_once_stays_within_quota(store, registry):
    rid, _ = _active_round(store, registry, judgements=2)
    keys = [it.key for it in rounds.load_items(store, rid)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(ANNOTATORS))

    def judge(name: str) -> None:
        try:
            barrier.wait()
            while (a := rounds.next_assignment(store, rid, name)) is not None:
                try:
                    _vote(store, a, name)
                except ItemClosed:  # another annotator took the item's last slot meanwhile
                    continue
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=judge, args=(n,)) for n in ANNOTATORS]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    votes = store.votes_frame(rid)
    assert Counter(votes["item_key"]) == Counter({k: 2 for k in keys})  # every item at quota, none over
    assert not votes.duplicated(["item_key", "annotator"]).any()


def test_a_restart_in_the_middle_carries_on(db_url, registry):
    with Store.open(db_url) as store:
        rid, _ = _active_round(with_annotators(store, *ANNOTATORS), registry, judgements=1)
        keys = [it.key for it in rounds.load_items(store, rid)]
        first = []
        for _ in range(len(keys) // 2):
            a = rounds.next_assignment(store, rid, "kim")
            _vote(store, a, "kim")
            first.append(a.item.key)
        expected = rounds.next_assignment(store, rid, "kim").item.key
    with Store.open(db_url) as store:  # a new process: nothing but the store carries over
        assert rounds.next_assignment(store, rid, "kim").item.key == expected
        rest = _drain(store, rid, "kim")
    assert sorted(first + rest) == sorted(keys)


def test_uniform_stays_the_default_and_active_is_stored(store, registry):
    rid, config = make_round(store, registry, models=MODELS[:2])
    assert config.sampling == "uniform" and rounds.load_config(store, rid)[1].sampling == "uniform"
    rid2, _ = _active_round(store, registry, models=MODELS[:3], name="r2")
    stored = rounds.load_config(store, rid2)[1]
    assert stored.sampling == "active" and stored.min_pair_votes == 2


# ------------------------------------------------------------------------------------ the choice itself


def _pair_items(pairs: dict[tuple[str, str], int]) -> list[Item]:
    return [Item(f"{a}|{b}|{k}", "s", f"d{k}", 1, a, b, "left") for (a, b), n in pairs.items() for k in range(n)]


def test_unvoted_pairs_first_then_the_pair_whose_order_is_open():
    models = ["m0", "m1", "m2", "m3"]
    pairs = {(a, b): 60 for i, a in enumerate(models) for b in models[i + 1 :]}
    items = _pair_items(pairs)
    ready = {it.key for it in items}
    kw = {"models": models, "annotator": "kim", "quota": 5, "seed": 0, "done": set(), "ready": ready}
    pick = rounds.active_next_item(items, counts={}, choices={}, **kw)
    assert pick is not None  # nothing voted yet: any pair, all at 0 votes
    # m0 beats m1 and m1 beats m2 clearly (30:0); m2 and m3 are close (16:14). Every pair has 30 votes.
    score = {("m0", "m1"): 30, ("m1", "m2"): 30, ("m2", "m3"): 16, ("m0", "m2"): 30, ("m0", "m3"): 30}
    score |= {("m1", "m3"): 30}
    choices, counts = {}, Counter()
    for (a, b), wins in score.items():
        voted = [it for it in items if (it.model_a, it.model_b) == (a, b)][:30]
        for k, it in enumerate(voted):
            choices[it.key] = {"a": 1} if k < wins else {"b": 1}
            counts[it.key] = 1
    pick = rounds.active_next_item(items, counts=counts, choices=choices, **kw)
    # m2 and m3 are the one adjacent pair whose intervals overlap: the vote goes to a pair that narrows the
    # interval of m2 or m3, never to m0-m1 (settled, and neither model is in the open pair).
    assert {pick.model_a, pick.model_b} & {"m2", "m3"}
    assert (pick.model_a, pick.model_b) != ("m0", "m1")
    assert counts[pick.key] == 0  # least-judged item of that pair
    # The served pair is the one pair_priorities ranks first.
    estimate = Estimate.fit(models, win_matrix(models, pair_outcomes(items, choices)))
    priorities = pair_priorities(estimate)
    assert max(priorities, key=priorities.get) == tuple(sorted((pick.model_a, pick.model_b)))
    assert priorities[("m0", "m1")] < max(priorities.values())
    # A pair under min_pair_votes jumps the queue.
    sparse = {k: v for k, v in choices.items() if not k.startswith("m0|m3|")}
    counts2 = Counter({k: 1 for k in sparse})
    pick = rounds.active_next_item(items, counts=counts2, choices=sparse, **kw)
    assert (pick.model_a, pick.model_b) == ("m0", "m3")
    # Items the annotator already judged, or full ones, are never chosen, whatever their pair's priority.
    closed = {it.key for it in items if (it.model_a, it.model_b) == ("m2", "m3")}
    pick = rounds.active_next_item(items, counts=counts, choices=choices, **{**kw, "done": closed})
    assert (pick.model_a, pick.model_b) != ("m2", "m3")


# ------------------------------------------------------------------------------------ the stopping rule


def test_separation_and_votes_needed_by_their_formula():
    import pandas as pd

    from arena.stats.active import separation, settled_top

    table = pd.DataFrame(
        {
            "model": ["a", "b", "c", "d"],
            "rating": [1100.0, 1050.0, 1000.0, 1000.0],
            "ci_low": [1080.0, 1030.0, 960.0, 950.0],
            "ci_high": [1120.0, 1070.0, 1040.0, 1050.0],
        }
    )
    adj = separation(table.iloc[[2, 0, 3, 1]], n_votes=500)  # any row order: sorted by rating
    assert list(zip(adj["upper"], adj["lower"])) == [("a", "b"), ("b", "c"), ("c", "d")]
    assert list(adj["separated"]) == [True, False, False]
    # b - c: gap 50, inner half-widths 20 + 40 = 60: 500 * ((60 / 50)^2 - 1) = 220 more votes.
    assert adj.loc[1, "votes_needed"] == 220 and adj.loc[0, "votes_needed"] == 0
    assert pd.isna(adj.loc[2, "votes_needed"])  # no gap: no number of votes separates them at this rate
    assert settled_top(list(adj["separated"])) == 1
    assert settled_top([True, True, True]) == 4 and settled_top([False, True]) == 0 and settled_top([]) == 0


def test_round_status_says_what_is_settled_and_what_is_not(store, registry, capsys):
    from arena.cli import main

    rid, _ = _active_round(store, registry, models=MODELS[:3], judgements=3)
    items = rounds.load_items(store, rid)
    status = rounds.round_status(store, rid)
    assert status.ranking.empty and "ranking: no votes yet" in status.text()
    # m-gamma wins every battle; m-alpha and m-beta split theirs evenly.
    for _ in items:
        for name in ANNOTATORS:
            a = rounds.next_assignment(store, rid, name)
            if a is None:
                break
            pair = {a.item.left_model, a.item.right_model}
            screen = "tie" if pair == {"m-alpha", "m-beta"} else None
            if screen is None:
                screen = "left" if a.item.left_model == "m-gamma" else "right"
            rounds.submit_judgement(store, a, name, screen)
    status = rounds.round_status(store, rid)
    assert list(status.ranking["model"])[0] == "m-gamma"
    assert list(status.adjacent["separated"]) == [True, False] and status.settled == 1
    text = status.text()
    assert "sampling: active" in text and "m-gamma > " in text and "top-1 order settled" in text
    assert main(["round", "status", "r1", "--db", store.url]) == 0
    assert "top-1 order settled" in capsys.readouterr().out
