"""Round states: close, reopen (items and votes untouched), start on a closed round refused, in the
library and through `arena round`; which actions each state allows."""

from __future__ import annotations

import pytest

from arena import rounds
from arena.cli import main
from arena.store import RoundLocked, Store
from tests.rounds_helpers import (
    make_round,
    registry_of,
    server_models_yaml,
    shipped_dialogs,
    store_answers,
    with_annotators,
)

MODELS = ["m-alpha", "m-beta"]


@pytest.fixture
def registry(tmp_path):
    return registry_of(server_models_yaml(tmp_path / "models.yaml", MODELS))


@pytest.fixture
def store(db_url: str):
    with Store.open(db_url) as s:
        yield with_annotators(s, "kim")


def test_reopen_puts_a_closed_round_back_without_touching_items_or_votes(store, registry):
    rid, _ = make_round(store, registry, annotators=["kim"])
    store_answers(store, rid)
    a = rounds.next_assignment(store, rid, "kim")
    assert rounds.submit_judgement(store, a, "kim", "left")
    items = [r.item_key for r in store.round_items(rid)]
    rounds.close_round(store, rid)
    assert store.get_round(rid).status == "closed" and rounds.rounds_for(store, "kim") == []
    with pytest.raises(RoundLocked, match="closed; reopen it first"):
        rounds.start_round(store, rid, dialogs=shipped_dialogs())
    with pytest.raises(RoundLocked, match="already closed"):
        rounds.close_round(store, rid)
    assert rounds.reopen_round(store, rid) == "running"
    found = store.get_round(rid)
    assert found.status == "running" and found.closed_at is None and found.started_at is not None
    assert [r.item_key for r in store.round_items(rid)] == items
    assert len(store.votes_frame(rid)) == 1 and rounds.rounds_for(store, "kim") == ["r1"]
    assert not rounds.submit_judgement(store, a, "kim", "right")  # the first vote still stands
    with pytest.raises(RoundLocked, match="not closed"):
        rounds.reopen_round(store, rid)


def test_a_draft_closed_and_reopened_is_a_draft_again(store, registry):
    rid, _ = make_round(store, registry, annotators=["kim"], start=False)
    rounds.close_round(store, rid)
    assert rounds.reopen_round(store, rid) == "draft"
    assert rounds.start_round(store, rid, dialogs=shipped_dialogs()) > 0


def test_each_state_allows_only_what_works():
    assert rounds.allowed_actions("draft") == {"start", "close"}
    assert rounds.allowed_actions("running") == {"pregen", "close"}
    assert rounds.allowed_actions("closed") == {"reopen"}
    assert rounds.allowed_actions(None) == set()


def test_round_cli_close_reopen_and_start_on_a_closed_round(tmp_path, capsys, registry):
    db = str(tmp_path / "cli.db")
    with Store.open(db) as s:
        with_annotators(s, "kim")
    assert (
        main(
            [
                "round",
                "create",
                "주간-2",
                "--eval-set",
                "emotion",
                "--models",
                ",".join(MODELS),
                "--annotators",
                "kim",
                "--start",
                "--config",
                str(registry.source),
                "--db",
                db,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["round", "close", "주간-2", "--db", db]) == 0
    assert "reopen" in capsys.readouterr().out
    # Starting a closed round used to print "is running" and exit 0 while the round stayed closed.
    assert main(["round", "start", "주간-2", "--db", db]) == 2
    captured = capsys.readouterr()
    assert "is closed; reopen it first" in captured.err and "running" not in captured.out
    with Store.open(db) as s:
        assert s.get_round("주간-2").status == "closed"
    assert main(["round", "close", "주간-2", "--db", db]) == 2
    assert "already closed" in capsys.readouterr().err
    assert main(["round", "reopen", "주간-2", "--db", db]) == 0
    assert "running again" in capsys.readouterr().out
    assert main(["round", "reopen", "주간-2", "--db", db]) == 2
    assert "not closed" in capsys.readouterr().err
    assert main(["round", "reopen", "nope", "--db", db]) == 2
    assert "no round 'nope'" in capsys.readouterr().err
    assert main(["round", "list", "--db", db]) == 0
    assert "주간-2\trunning" in capsys.readouterr().out


def test_an_empty_round_form_says_everything_missing_in_the_page_language():
    from arena.web.ui.rounds_tab import form_problems

    assert form_problems("ko", " ", [], [], [], "all", None, "") == [
        "라운드 이름을 적어 주세요",
        "평가 세트를 하나 이상 고르세요",
        "모델을 2개 이상 고르세요",
        "평가자를 한 명 이상 고르세요",
    ]
    assert form_problems("en", "", ["emotion"], ["m-alpha"], ["kim"], "all", None, "") == [
        "give the round a name",
        "pick at least two models",
    ]
    sampled = form_problems("ko", "r", ["emotion"], MODELS, ["kim"], "sampled", 3, "m-alpha=2, 없는-모델=1, m-beta=0")
    assert sampled == [
        "턴마다 뽑을 짝 수 3이(가) 가능한 짝 1개보다 많습니다",
        "가중치를 준 모델이 라운드에 없습니다: 없는-모델",
        "가중치는 0보다 커야 합니다",
    ]
    assert form_problems("ko", "r", ["emotion"], MODELS, ["kim"], "sampled", 1, "m-alpha=많이") == [
        "모델 가중치는 '모델=숫자'를 쉼표로 구분해 적어 주세요"
    ]
    assert form_problems("ko", "r", ["emotion"], MODELS, ["kim"], "all", None, "") == []
