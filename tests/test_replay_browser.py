"""The Replay tab stores no silent wrong scores (issue 15, items 1-4 and the replay parts of 8).

Each test drives Debian's headless Chromium against one real `arena serve` subprocess with the two
tiny models, as its own annotator (replay answers and ratings are kept per annotator), and checks
what ratings.db holds as well as what the page shows.
"""

from __future__ import annotations

import re

import pytest

from arena.store import Store
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
ANNOTATORS = ("키보드", "드롭다운", "세트", "재평가", "두번")
FIRST_FASHION = "fashion-v041-crocs-zipup"
FIRST_PERSONA = "persona-kimjihye-chat-v058"

# Counts the page's queue events (joins sent, completions received) so a test can wait until the
# server has finished whatever an interaction triggered, instead of sleeping a guessed time.
WATCH_QUEUE = """
window.__joins = 0; window.__done = 0;
const realFetch = window.fetch;
window.fetch = async function (...args) {
  const request = args[0];
  const url = typeof request === 'string' ? request : (request && request.url) || '';
  if (url.includes('/queue/join')) window.__joins += 1;
  const response = await realFetch.apply(this, args);
  if (url.includes('/queue/data') && response.body) {
    const reader = response.clone().body.getReader();
    const decoder = new TextDecoder();
    let tail = '';
    (async () => {
      for (;;) {
        const {done, value} = await reader.read();
        if (done) return;
        const text = tail + decoder.decode(value, {stream: true});
        window.__done += text.split('process_completed').length - 1;
        tail = text.slice(-20);  // a marker split across two chunks is counted once it is whole
        if (tail.includes('process_completed')) tail = '';
      }
    })();
  }
  return response;
};
"""


@pytest.fixture(scope="module")
def replay_server(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    config = write_models_yaml(tmp / "models.yaml", tiny_models)
    db = str(tmp / "ratings.db")
    with Store.open(db) as store:
        for name in ANNOTATORS:
            store.add_annotator(name, "pw-1234")
    with serve(config, db, tmp / "serve.log") as url:
        yield url, db


@pytest.fixture()
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str, user: str, height: int = 1600):
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.add_init_script(WATCH_QUEUE)
    login(page, url, user, "pw-1234")
    return page


def _ready(page) -> None:
    """The turn is on screen as a person sees it before acting: its label in the turn dropdown, both
    sides answered and scorable, and submit enabled. (CI once read an empty turn label right after the
    scores were enabled, 1 run in about 20; the label is part of being ready, so it is waited for.)"""
    from playwright.sync_api import expect

    for i in (0, 1):
        expect(page.locator(f"#replay-score-{i} input").first).to_be_enabled(timeout=120_000)
    expect(page.locator("#replay-turn input")).to_have_value(re.compile(r"\S"), timeout=60_000)
    expect(page.locator("#replay-submit")).to_be_enabled(timeout=60_000)


def _answer(page, side: int) -> str:
    """The answer text a person sees on a side. (The element's innerText also holds Gradio's status tracker,
    drawn at opacity 0 while an event runs, "processing | 0.0/0.1s": a CI run read it into the answer.)"""
    return page.locator(f"#replay-answer-{side} .arena-answer").inner_text()


def _quiet(page) -> None:
    """Wait until every queue event the page sent has completed, and nothing new started for a while
    (a `.then` step starts right after the one before it completes)."""
    page.wait_for_function(
        """() => {
          const idle = window.__joins === window.__done;
          const key = window.__joins + ':' + window.__done;
          if (!idle || window.__quietKey !== key) { window.__quietKey = key; window.__quietSince = Date.now(); return false; }
          return Date.now() - window.__quietSince > 1500;
        }""",
        polling=100,
        timeout=120_000,
    )


def _pick(page, elem_id: str, label: str) -> None:
    """Choose an option of a Gradio dropdown by its label, as a person does, once the page is idle."""
    _quiet(page)
    page.locator(f"#{elem_id} input").click()
    page.locator(f'#{elem_id} li[data-testid="dropdown-option"]', has_text=label).first.click()


def _pick_nth(page, elem_id: str, n: int) -> str:
    """Choose the n-th option of a Gradio dropdown (0-based) once the page is idle; returns its label."""
    _quiet(page)
    # From the top of the page, as a person scrolls up to the dropdowns: Playwright scrolling the window
    # to reach an option makes Gradio move (and then close) the open list.
    page.evaluate("window.scrollTo(0, 0)")
    page.locator(f"#{elem_id} input").click()
    option = page.locator(f'#{elem_id} li[data-testid="dropdown-option"]').nth(n)
    label = option.get_attribute("aria-label")
    option.click()
    return label


def _labels(page, elem_id: str) -> list[str]:
    """The option labels of a dropdown (opened and closed again with Escape, which changes nothing)."""
    _quiet(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f'#{elem_id} li[data-testid="dropdown-option"]')
    options.first.wait_for()
    labels = [options.nth(i).get_attribute("aria-label") for i in range(options.count())]
    page.keyboard.press("Escape")
    # Escape leaves the input focused, and a click on a focused dropdown closes it rather than opening it.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    _quiet(page)
    return labels


def _submit_and_wait_next(page, key: str = "Control+Enter") -> None:
    """Submit, then wait until another turn is on screen."""
    from playwright.sync_api import expect

    shown = page.locator("#replay-turn input").input_value()
    assert shown, "no turn on screen to submit"
    page.keyboard.press(key)
    expect(page.locator("#replay-turn input")).not_to_have_value(shown, timeout=60_000)


def _ratings(db: str, annotator: str):
    with Store.open(db) as store:
        frame = store.ratings_frame()
    return frame[frame["annotator"] == annotator].reset_index(drop=True)


def _generations(db: str, annotator: str):
    with Store.open(db) as store:
        frame = store.generations_frame()
    return frame[frame["context"] == f"replay:{annotator}"].reset_index(drop=True)


def _has_class(name: str) -> re.Pattern[str]:
    """A class-list pattern for expect().to_have_class: the element has ``name`` among its classes."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def _side_active(page, i: int) -> bool:
    return page.evaluate(f"document.getElementById('replay-side-{i}').classList.contains('arena-active')")


def test_keyboard_scores_start_on_side_a_every_turn(replay_server, browser):
    """Item 1: after clicking into B's comment and submitting with Ctrl+Enter, the next turn's keys
    still score A first; a side is highlighted before the first key press."""
    from playwright.sync_api import expect

    url, db = replay_server
    user = ANNOTATORS[0]
    page = _open(browser, url, user)
    _ready(page)
    expect(page.locator("#replay-side-0")).to_have_class(_has_class("arena-active"))
    assert not _side_active(page, 1)
    page.locator("#replay-history").click()
    page.keyboard.press("4")
    page.keyboard.press("2")
    page.locator("#replay-comment-1 textarea").click()
    page.keyboard.type("좋아요")
    # The next turn opens; its form is empty again and the highlight is back on A.
    _submit_and_wait_next(page)
    _ready(page)
    expect(page.locator("#replay-side-0")).to_have_class(_has_class("arena-active"))
    assert not _side_active(page, 1)
    page.locator("#replay-history").click()
    page.keyboard.press("5")
    page.keyboard.press("1")
    expect(page.locator('#replay-score-0 input[value="5"]')).to_be_checked()
    expect(page.locator('#replay-score-1 input[value="1"]')).to_be_checked()
    page.screenshot(path=str(ARTIFACTS / "replay-keyboard.png"), full_page=True)
    _submit_and_wait_next(page)
    _quiet(page)

    ratings = _ratings(db, user)
    got = {(r.turn_index, r.model): r.score for r in ratings.itertuples()}
    assert got == {(1, "polyglot-tiny"): 4, (1, "llama-tiny"): 2, (3, "polyglot-tiny"): 5, (3, "llama-tiny"): 1}
    assert set(ratings["dialog_id"]) == {FIRST_FASHION}
    assert ratings[(ratings.turn_index == 1) & (ratings.model == "llama-tiny")].iloc[0]["comment"] == "좋아요"


def test_opening_and_closing_dropdowns_changes_nothing(replay_server, browser):
    """Item 2: opening a dropdown and leaving it (click outside, Escape) neither regenerates nor blanks
    anything, and the submit that follows rates the turn on screen."""
    from playwright.sync_api import expect

    url, db = replay_server
    user = ANNOTATORS[1]
    page = _open(browser, url, user)
    _ready(page)
    second = _pick_nth(page, "replay-turn", 1)
    expect(page.locator("#replay-turn input")).to_have_value(second)
    _ready(page)
    _quiet(page)
    before = _generations(db, user)[["generation_id", "turn_index", "created_at"]]
    answer = _answer(page, 0)
    history = page.locator("#replay-history").inner_text()

    def unchanged() -> None:
        _quiet(page)
        expect(page.locator("#replay-eval-set input")).to_have_value("selectstar_fashion")
        expect(page.locator("#replay-dialog input")).to_have_value(f"{FIRST_FASHION} · tool_use")
        expect(page.locator("#replay-turn input")).to_have_value(second)
        assert page.locator("#replay-history").inner_text() == history
        assert _answer(page, 0) == answer
        assert page.locator("#replay-score-0 input").first.is_enabled()
        after = _generations(db, user)[["generation_id", "turn_index", "created_at"]]
        assert after.equals(before), f"answers were regenerated:\n{before}\n{after}"

    page.keyboard.press("3")  # a half-filled form must survive the dropdowns too
    page.locator("#replay-dialog input").click()
    page.locator("#replay-progress").click()
    unchanged()
    page.locator("#replay-eval-set input").click()
    page.locator("#replay-progress").click()
    unchanged()
    page.locator("#replay-eval-set input").click()
    page.keyboard.press("Escape")
    unchanged()
    expect(page.locator('#replay-score-0 input[value="3"]')).to_be_checked()

    page.locator("#replay-history").click()
    page.keyboard.press("2")
    _submit_and_wait_next(page)
    _quiet(page)
    ratings = _ratings(db, user)
    assert {(r.dialog_id, r.turn_index, r.model, r.score) for r in ratings.itertuples()} == {
        (FIRST_FASHION, 3, "polyglot-tiny", 3),
        (FIRST_FASHION, 3, "llama-tiny", 2),
    }


def test_choosing_an_eval_set_opens_its_first_unrated_turn(replay_server, browser):
    """Item 3: choosing "persona" shows that set's first unrated turn, and a submit rates it."""
    from playwright.sync_api import expect

    url, db = replay_server
    user = ANNOTATORS[2]
    page = _open(browser, url, user)
    _ready(page)
    fashion_history = page.locator("#replay-history").inner_text()
    _pick(page, "replay-eval-set", "persona")
    expect(page.locator("#replay-dialog input")).to_have_value(re.compile(rf"^{FIRST_PERSONA}"), timeout=60_000)
    expect(page.locator("#replay-turn input")).to_have_value(re.compile("^1"))
    expect(page.locator("#replay-progress")).to_contain_text("persona")
    _ready(page)
    assert page.locator("#replay-history").inner_text() != fashion_history
    page.screenshot(path=str(ARTIFACTS / "replay-persona.png"), full_page=True)
    page.locator("#replay-history").click()
    page.keyboard.press("5")
    page.keyboard.press("4")
    _submit_and_wait_next(page)
    _quiet(page)

    ratings = _ratings(db, user)
    assert {(r.eval_set, r.dialog_id, r.turn_index, r.model, r.score) for r in ratings.itertuples()} == {
        ("persona", FIRST_PERSONA, 1, "polyglot-tiny", 5),
        ("persona", FIRST_PERSONA, 1, "llama-tiny", 4),
    }


def test_rerating_a_turn_shows_and_keeps_the_earlier_rating(replay_server, browser):
    """Item 4: a rated turn reopens with its stored answers and rating; the edit says so, and the
    earlier rating stays in the history; the turn list marks rated turns."""
    from playwright.sync_api import expect

    url, db = replay_server
    user = ANNOTATORS[3]
    page = _open(browser, url, user)
    _ready(page)
    page.locator("#replay-history").click()
    page.keyboard.press("4")
    page.keyboard.press("2")
    page.locator("#replay-criteria-0 label").first.click()
    page.locator("#replay-comment-0 textarea").fill("존댓말이 자연스러움")
    rated_answer = _answer(page, 1)
    shown = page.locator("#replay-turn input").input_value()
    page.locator("#replay-submit").click()
    expect(page.locator("#replay-turn input")).not_to_have_value(shown, timeout=60_000)
    # The confirmation names the saved turn and stays next to the button while the next turn loads.
    expect(page.locator("#replay-saved")).to_contain_text("저장", timeout=30_000)
    expect(page.locator("#replay-saved")).to_contain_text("1번 턴")
    _ready(page)
    _quiet(page)
    first = _ratings(db, user)
    gens_before = _generations(db, user)
    assert len(first) == 2

    labels = _labels(page, "replay-turn")
    assert "평가함" in labels[0] and not any("평가함" in x for x in labels[1:]), labels
    _pick_nth(page, "replay-turn", 0)
    # The stored answers and this annotator's rating come back, ready to edit; nothing is regenerated.
    expect(page.locator('#replay-score-0 input[value="4"]')).to_be_checked(timeout=60_000)
    expect(page.locator('#replay-score-1 input[value="2"]')).to_be_checked()
    expect(page.locator("#replay-comment-0 textarea")).to_have_value("존댓말이 자연스러움")
    expect(page.locator("#replay-criteria-0 input").first).to_be_checked()
    expect(page.locator("#replay-submit")).to_contain_text("평가 수정")
    expect(page.locator("#replay-status")).to_contain_text("기록")
    assert _answer(page, 1) == rated_answer
    page.screenshot(path=str(ARTIFACTS / "replay-edit.png"), full_page=True)
    _quiet(page)
    assert _generations(db, user)[["generation_id", "created_at"]].equals(gens_before[["generation_id", "created_at"]])

    page.locator('#replay-score-0 input[value="3"]').click()
    page.locator("#replay-comment-0 textarea").fill("다시 보니 어색함")
    page.locator("#replay-submit").click()
    expect(page.locator("#replay-saved")).to_contain_text("수정", timeout=30_000)
    _quiet(page)

    after = _ratings(db, user)
    assert len(after) == 2 and list(after["rating_id"]) == list(first["rating_id"])
    row_a = after[after.model == "polyglot-tiny"].iloc[0]
    assert (row_a.turn_index, row_a.score, row_a.comment) == (1, 3, "다시 보니 어색함")
    with Store.open(db) as store:
        history = store.rating_history(int(row_a.rating_id))
        untouched = store.rating_history(int(after[after.model == "llama-tiny"].iloc[0].rating_id))
    assert [(h.score, list(h.criteria), h.comment) for h in history] == [(4, ["fluency"], "존댓말이 자연스러움")]
    assert untouched == []

    # The English page says the same.
    page.goto(url + "en/")
    _ready(page)
    _quiet(page)
    assert "rated" in _pick_nth(page, "replay-turn", 0)
    expect(page.locator('#replay-score-0 input[value="3"]')).to_be_checked(timeout=60_000)
    expect(page.locator("#replay-submit")).to_contain_text("Update rating")
    page.screenshot(path=str(ARTIFACTS / "replay-edit-en.png"), full_page=True)


def test_double_submit_labels_and_reachable_form(replay_server, browser):
    """Item 8 (replay): a second quick submit is not refused with "nothing to rate"; turns are
    numbered 1, 2, 3; the submit button stays on screen above long answers."""
    from playwright.sync_api import expect

    url, db = replay_server
    user = ANNOTATORS[4]
    page = _open(browser, url, user, height=700)
    _ready(page)
    assert _labels(page, "replay-turn")[:3] == ["1번 턴", "2번 턴", "3번 턴"]
    expect(page.locator("#replay-submit")).to_be_in_viewport()
    page.locator("#replay-history").click()
    page.keyboard.press("4")
    page.keyboard.press("4")
    page.locator("#replay-submit").dblclick()
    expect(page.locator("#replay-saved")).to_contain_text("저장", timeout=30_000)
    _ready(page)
    _quiet(page)
    assert page.get_by_text("평가할 답변이 아직 없습니다").count() == 0
    ratings = _ratings(db, user)
    assert len(ratings) == 2 and set(ratings["turn_index"]) == {1}
