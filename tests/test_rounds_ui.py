"""Round states in the Rounds tab, the Blind tab's round list, and the Blind tab's keys, in a real browser.

A real `arena serve` with the tiny models; Playwright drives Debian's headless Chromium. A researcher
walks one round through draft -> running -> closed -> running (start, pre-generate, close with its
confirmation step, reopen) and the buttons follow the state; an annotator whose page was open before
the round started finds it with 다음 항목 ▶, without reloading. Another annotator votes with the
keyboard only. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import pytest

from arena import rounds
from arena.store import Store
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml
from tests.rounds_helpers import make_round, registry_of, store_answers

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
ROUND = "주간-상태"
KEYS_ROUND = "키보드-라운드"
ACTIVE_ROUND = "능동-라운드"
BUTTONS = ("start", "pregen", "close", "reopen")


@pytest.fixture(scope="module")
def rounds_server(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rounds-ui")
    db = str(tmp / "ratings.db")
    config = write_models_yaml(tmp / "models.yaml", tiny_models, max_tokens=4)
    registry = registry_of(config)
    with Store.open(db) as store:
        for name in ("kim", "park", "choi", "jung"):
            store.add_annotator(name, "pw-1234")
        store.add_annotator("lead", "pw-1234", role="researcher")
        # An active round with votes, for the stopping rule (made first: the tab opens on the newest round).
        rid, _ = make_round(store, registry, ACTIVE_ROUND, annotators=["choi", "jung"], judgements=2, sampling="active")
        store_answers(store, rid)
        for k in range(40):
            name = ("choi", "jung")[k % 2]
            if (a := rounds.next_assignment(store, rid, name)) is None:
                break
            polyglot = "left" if a.item.left_model == "polyglot-tiny" else "right"
            llama = "right" if polyglot == "left" else "left"
            rounds.submit_judgement(store, a, name, (polyglot, polyglot, llama, "tie")[k % 4])
        # A one-turn draft: pre-generating it is two short answers of the tiny models.
        make_round(store, registry, ROUND, start=False, annotators=["kim"], dialogs=["emotion-koalpaca-sample-01"])
        # A running round with stored answers, for the keyboard test.
        rid, _ = make_round(store, registry, KEYS_ROUND, annotators=["park"], dialogs=["emotion-exam-*"])
        store_answers(store, rid, text="긴 답변 " * 400)  # long answers: the vote controls end up far below
    with serve(config, db, tmp / "serve.log") as url:
        yield url, db


def _expect_enabled(page, expect, *wanted: str) -> None:
    """Exactly the ``wanted`` round buttons are enabled."""
    for b in BUTTONS:
        button = expect(page.locator(f"#rounds-{b}"))
        if b in wanted:
            button.to_be_enabled(timeout=30_000)
        else:
            button.to_be_disabled(timeout=30_000)


def _pick(page, name: str) -> None:
    """Choose a round in the Rounds tab's picker (it opens on the newest)."""
    page.locator("#rounds-pick input").click()
    page.get_by_role("option", name=name).click()


def _status(db: str, name: str) -> str:
    with Store.open(db) as store:
        return store.get_round(name).status


def test_round_states_and_the_blind_round_list(rounds_server):
    from playwright.sync_api import expect, sync_playwright

    url, db = rounds_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        # The annotator's page is open before the round starts: nothing to judge yet.
        annotator = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
        login(annotator, url, "kim", "pw-1234")
        annotator.get_by_role("tab", name="블라인드 A/B 평가").click()
        expect(annotator.locator("#blind-status")).to_contain_text("평가 라운드가 없습니다", timeout=60_000)

        lead = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
        login(lead, url, "lead", "pw-1234")
        lead.get_by_role("tab", name="라운드 관리").click()
        expect(lead.locator("#rounds-summary")).to_contain_text(KEYS_ROUND, timeout=60_000)
        _pick(lead, ROUND)
        # Draft: only start (and close) work; the state reads in Korean.
        expect(lead.locator("#rounds-summary")).to_contain_text("(준비 중)", timeout=60_000)
        _expect_enabled(lead, expect, "start", "close")
        lead.screenshot(path=str(ARTIFACTS / "rounds-draft.png"), full_page=True)

        lead.locator("#rounds-start").click()
        expect(lead.locator("#rounds-summary")).to_contain_text("(진행 중)", timeout=30_000)
        expect(lead.locator("#rounds-message")).to_contain_text("시작", timeout=30_000)
        _expect_enabled(lead, expect, "pregen", "close")
        # Gradio's screen-reader announcer read out its raw key "common.complete" after each event.
        expect(lead.locator('div.sr-only[role="status"]').first).to_have_text("완료", timeout=30_000)
        lead.locator("#rounds-pregen").click()
        expect(lead.locator("#rounds-message")).to_contain_text("새로 생성 2개", timeout=180_000)
        expect(lead.locator("#rounds-message")).to_contain_text("실패 0개")
        assert "answers" not in lead.locator("#rounds-message").inner_text()

        # The annotator's page finds the new round with 다음 항목 ▶, no reload.
        annotator.locator("#blind-next").click()
        expect(annotator.locator("#blind-round input")).to_have_value(ROUND, timeout=30_000)
        expect(annotator.locator("#blind-progress")).to_contain_text("남은 항목 1개", timeout=30_000)
        annotator.screenshot(path=str(ARTIFACTS / "blind-round-found.png"), full_page=True)
        # One vote, cast through the store as the blind tab would, must survive closing and reopening.
        with Store.open(db) as store:
            a = rounds.next_assignment(store, ROUND, "kim")
            assert rounds.submit_judgement(store, a, "kim", "tie")
            items_before = [r.item_key for r in store.round_items(store.get_round(ROUND).id)]

        # Closing asks first; cancelling leaves the round running.
        lead.locator("#rounds-close").click()
        expect(lead.locator("#rounds-close-question")).to_contain_text(ROUND, timeout=30_000)
        lead.screenshot(path=str(ARTIFACTS / "rounds-close-confirm.png"), full_page=True)
        assert _status(db, ROUND) == "running"
        lead.locator("#rounds-close-no").click()
        expect(lead.locator("#rounds-close-confirm")).to_be_hidden(timeout=30_000)
        assert _status(db, ROUND) == "running"
        lead.locator("#rounds-close").click()
        lead.locator("#rounds-close-yes").click()
        expect(lead.locator("#rounds-summary")).to_contain_text("(종료됨)", timeout=30_000)
        _expect_enabled(lead, expect, "reopen")
        assert _status(db, ROUND) == "closed"
        lead.screenshot(path=str(ARTIFACTS / "rounds-closed.png"), full_page=True)

        # The closed round leaves the annotator's list on the next click.
        annotator.locator("#blind-next").click()
        expect(annotator.locator("#blind-status")).to_contain_text("평가 라운드가 없습니다", timeout=30_000)

        # Reopen: running again, with the same items and the vote.
        lead.locator("#rounds-reopen").click()
        expect(lead.locator("#rounds-summary")).to_contain_text("(진행 중)", timeout=30_000)
        expect(lead.locator("#rounds-summary")).to_contain_text("투표 1")
        _expect_enabled(lead, expect, "pregen", "close")
        assert _status(db, ROUND) == "running"
        with Store.open(db) as store:
            assert [r.item_key for r in store.round_items(store.get_round(ROUND).id)] == items_before
            assert len(store.votes_frame(store.get_round(ROUND).id)) == 1

        # The English page says the same in English.
        en = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
        login(en, url + "en/", "lead", "pw-1234")
        en.get_by_role("tab", name="Rounds").click()
        expect(en.locator("#rounds-summary")).to_contain_text(KEYS_ROUND, timeout=60_000)
        _pick(en, ROUND)
        expect(en.locator("#rounds-summary")).to_contain_text("(running)", timeout=30_000)
        en.locator("#rounds-close").click()
        expect(en.locator("#rounds-close-question")).to_contain_text("Annotators can no longer vote", timeout=30_000)
        en.screenshot(path=str(ARTIFACTS / "rounds-close-confirm-en.png"), full_page=True)
        en.locator("#rounds-close-no").click()
        assert _status(db, ROUND) == "running"
        browser.close()


def test_blind_vote_with_the_keyboard_only(rounds_server):
    from playwright.sync_api import expect, sync_playwright

    url, db = rounds_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        login(page, url, "park", "pw-1234")
        page.get_by_role("tab", name="블라인드 A/B 평가").click()
        expect(page.locator("#blind-progress")).to_contain_text("남은 항목", timeout=60_000)
        expect(page.locator("#blind-shortcuts")).to_contain_text("Ctrl+Enter")
        expect(page.locator("#blind-score-0 input").first).to_be_enabled(timeout=30_000)
        page.locator("#blind-history").click()  # focus on the page, away from any text box

        # Submitting with nothing chosen: the refusal shows on screen, not below the long answers.
        page.keyboard.press("Control+Enter")
        expect(page.locator("#blind-status")).to_contain_text("골라 주세요", timeout=30_000)
        assert page.locator("#blind-status").is_visible()
        box = page.locator("#blind-status").bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 800, box
        page.screenshot(path=str(ARTIFACTS / "blind-warning-in-view.png"))

        # 4 scores A and moves the highlight to B, 2 scores B, B votes "B is better", Ctrl+Enter submits.
        page.keyboard.press("4")
        page.keyboard.press("2")
        page.keyboard.press("b")
        expect(page.locator('#blind-score-0 input[value="4"]')).to_be_checked()
        expect(page.locator('#blind-score-1 input[value="2"]')).to_be_checked()
        expect(page.locator('#blind-vote input[value="right"]')).to_be_checked()
        page.keyboard.press("t")  # changing one's mind before submitting: tie
        expect(page.locator('#blind-vote input[value="tie"]')).to_be_checked()
        page.keyboard.press("a")
        expect(page.locator('#blind-vote input[value="left"]')).to_be_checked()
        page.screenshot(path=str(ARTIFACTS / "blind-keyboard.png"))
        page.keyboard.press("Control+Enter")
        expect(page.locator("#blind-status")).to_contain_text("저장", timeout=30_000)
        browser.close()

    with Store.open(db) as store:
        votes = store.votes_frame(store.get_round(KEYS_ROUND).id)
        ratings = store.ratings_frame()
    row = votes[votes["annotator"] == "park"].iloc[0]
    left_model = row["model_a"] if row["a_position"] == "left" else row["model_b"]
    assert {"a": row["model_a"], "b": row["model_b"]}[row["choice"]] == left_model  # "A is better" = left
    mine = ratings[ratings["annotator"] == "park"]
    right_model = ({row["model_a"], row["model_b"]} - {left_model}).pop()
    assert dict(zip(mine["model"], mine["score"])) == {left_model: 4, right_model: 2}


def test_blind_keys_do_nothing_on_other_tabs(rounds_server):
    """The replay tab keeps its own keys: A/B/T/X and digits there never vote in the (hidden) blind tab."""
    from playwright.sync_api import expect, sync_playwright

    url, db = rounds_server
    with Store.open(db) as store:
        before = len(store.votes_frame())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        login(page, url, "park", "pw-1234")
        page.get_by_role("tab", name="블라인드 A/B 평가").click()
        expect(page.locator("#blind-score-0 input").first).to_be_enabled(timeout=60_000)
        page.get_by_role("tab", name="대본 재현 평가").click()
        expect(page.locator("#replay-progress")).to_be_visible(timeout=30_000)
        for key in ("a", "5", "Control+Enter"):
            page.keyboard.press(key)
        page.get_by_role("tab", name="블라인드 A/B 평가").click()
        expect(page.locator("#blind-score-0 input").first).to_be_enabled(timeout=30_000)
        for i in (0, 1):
            assert not page.locator(f"#blind-score-{i} input:checked").count()
        assert not page.locator("#blind-vote input:checked").count()
        browser.close()
    with Store.open(db) as store:
        assert len(store.votes_frame()) == before


def test_round_status_shows_the_stopping_rule(rounds_server):
    from playwright.sync_api import expect, sync_playwright

    url, db = rounds_server
    ARTIFACTS.mkdir(exist_ok=True)
    with Store.open(db) as store:
        status = rounds.round_status(store, ACTIVE_ROUND)
    assert status.votes > 0 and len(status.adjacent) == 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for lang, tab, words, column in (
            ("", "라운드 관리", ("멈춤 규칙", "능동 샘플링"), "95% 구간 분리"),
            ("en/", "Rounds", ("Stopping rule", "active sampling"), "95% intervals separate"),
        ):
            page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            login(page, url + lang, "lead", "pw-1234")
            page.get_by_role("tab", name=tab).click()
            expect(page.locator("#rounds-summary")).to_contain_text(KEYS_ROUND, timeout=60_000)
            _pick(page, ACTIVE_ROUND)
            for word in words:
                expect(page.locator("#rounds-stopping")).to_contain_text(word, timeout=30_000)
            table = page.locator("#rounds-separation")
            expect(table).to_contain_text("polyglot-tiny", timeout=30_000)
            expect(table).to_contain_text(column)
            expect(table).to_contain_text(("약 ", "about ")[bool(lang)])  # overlapping, with an estimate
            page.get_by_text(("새 라운드 만들기", "Create a round")[bool(lang)]).click()  # the sampling choice
            expect(page.locator("#round-sampling")).to_contain_text(("능동", "active")[bool(lang)])
            page.screenshot(path=str(ARTIFACTS / f"rounds-stopping{'-en' if lang else ''}.png"), full_page=True)
        browser.close()
