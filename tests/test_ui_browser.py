"""A real browser rates a replayed turn: log in, watch two tiny models stream, score both, submit.

Playwright drives Debian's headless Chromium against a real `arena serve` subprocess; the test then
reads the rows back from the store. A screenshot of the rating screen is kept in test-artifacts/.
"""

from __future__ import annotations

import json

import pytest

from arena.store import Store
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"

# Whether a streaming cursor was ever drawn on each side: only an update sent before the answer was done
# carries it. (Counting text changes instead proves nothing here: the tiny models' 48 tokens take ~150 ms
# and reach the page in one or two changes; a count of innerText changes had been counting Gradio's
# invisible status tracker, "processing | 0.0/0.1s" at opacity 0, beside the answer.)
WATCH_STREAMING = """
window.__sawCursor = {0: false, 1: false};
new MutationObserver(() => {
  for (const i of [0, 1]) {
    const el = document.getElementById('replay-answer-' + i);
    if (el && el.querySelector('.arena-cursor')) window.__sawCursor[i] = true;
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture()
def arena_url(tiny_models, tmp_path):
    config = write_models_yaml(tmp_path / "models.yaml", tiny_models)
    db = str(tmp_path / "ratings.db")
    with Store.open(db) as store:
        store.add_annotator("지혜", "pw-1234")
    with serve(config, db, tmp_path / "serve.log") as url:
        yield url, db


def test_rate_a_replayed_turn_in_the_browser(arena_url):
    from playwright.sync_api import expect, sync_playwright

    url, db = arena_url
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.add_init_script(WATCH_STREAMING)
        login(page, url, "지혜", "pw-1234")

        # The first unrated turn of the fashion set opens by itself and both models stream.
        expect(page.locator("#replay-progress")).to_contain_text("selectstar_fashion", timeout=60_000)
        for i in (0, 1):
            expect(page.locator(f"#replay-score-{i} input").first).to_be_enabled(timeout=120_000)
        saw_cursor = page.evaluate("window.__sawCursor")
        # Side A, as before: a side that finishes before its first update is drawn shows no cursor.
        assert saw_cursor["0"], f"the answers were never drawn while streaming: {saw_cursor}"
        expect(page.locator("#replay-gt-0 .arena-gt")).to_be_visible()
        expect(page.locator("#replay-header-1")).to_contain_text("llama-tiny")

        # Keyboard: 4 scores side A, then the highlight moves to B, 2 scores B; a criterion and a comment.
        page.locator("#replay-history").click()
        page.keyboard.press("4")
        # Submitting with side B unscored is refused with a message, and A's score stays.
        page.keyboard.press("Control+Enter")
        expect(page.get_by_text("점수를 모두 매겨 주세요: B")).to_be_visible(timeout=30_000)
        # Headed in Korean too (Gradio writes its type, "Error", whatever title the arena gives).
        expect(page.locator(".toast-title.error").first).to_contain_text("확인해 주세요")
        assert "Error" not in page.locator(".toast-title.error").first.inner_text()
        expect(page.locator('#replay-score-0 input[value="4"]')).to_be_checked()
        page.keyboard.press("2")
        page.locator("#replay-criteria-0 label").first.click()
        page.locator("#replay-comment-1 textarea").fill("반복이 심함")
        page.screenshot(path=str(ARTIFACTS / "replay-rating.png"), full_page=True)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#replay-saved")).to_contain_text("저장", timeout=30_000)
        expect(page.locator("#replay-progress")).to_contain_text("1개 평가함", timeout=30_000)
        browser.close()

    with Store.open(db) as store:
        ratings = store.ratings_frame()
        gens = store.generations_frame()
    assert len(ratings) == 2
    assert set(ratings["annotator"]) == {"지혜"}
    by_model = dict(zip(ratings["model"], ratings["score"]))
    assert by_model == {"polyglot-tiny": 4, "llama-tiny": 2}
    row_a = ratings[ratings["model"] == "polyglot-tiny"].iloc[0]
    assert list(row_a["criteria"]) == ["fluency"]
    assert ratings[ratings["model"] == "llama-tiny"].iloc[0]["comment"] == "반복이 심함"
    rated = gens[gens["generation_id"].isin(ratings["generation_id"])]
    assert len(rated) == 2 and (rated["context"] == "replay:지혜").all()
    assert rated["dialog_id"].nunique() == 1 and rated["turn_index"].nunique() == 1
    assert rated["similarity"].notna().all()
    diff = rated.iloc[0]["gt_diff"]
    diff = json.loads(diff) if isinstance(diff, str) else diff
    assert diff and {op for op, _ in diff} <= {"equal", "insert", "delete"}
    assert (rated["text"].str.len() > 0).any()
