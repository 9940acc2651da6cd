"""Streaming keeps up with the server: the page shows the final text as it arrives, Stop takes effect on
the page at once, and the bytes sent for an answer grow linearly with its length (issue 15, item 5).

Real `arena serve` processes with the tiny models, greedy, so every answer runs to max_tokens (the
tiny polyglot model writes ~4.6 characters a token, the tiny llama one a newline a token). Nothing
here is a wall-clock threshold: lags are counted in animation frames and bytes in ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from arena.store import Store
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve
from tests.gradio_http import GradioSession

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
PROMPT = "코트에 대해 자세히 알려 주세요"

# In the page: an animation-frame counter; the event stream as the page reads it (each message with the
# frame it arrived in); and each change of the live answers' text with its frame.
WATCH = r"""
window.__frame = 0; (function tick() { window.__frame++; requestAnimationFrame(tick); })();
window.__msgs = []; window.__changes = []; window.__joins = [];
const realFetch = window.fetch;
window.fetch = async function (...args) {
  const resp = await realFetch.apply(this, args);
  const url = String((args[0] && args[0].url) || args[0]);
  if (url.includes('/queue/join')) {  // which event id each fired event got
    const fn = JSON.parse((args[1] && args[1].body) || '{}').fn_index;
    resp.clone().json().then(j => window.__joins.push({fn, event: j.event_id})).catch(() => {});
    return resp;
  }
  if (!url.includes('/queue/data') || !resp.body) return resp;
  const [mine, theirs] = resp.body.tee();
  (async () => {
    const reader = mine.getReader(), dec = new TextDecoder(); let buf = '';
    for (;;) {
      const {done, value} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true});
      const lines = buf.split('\n'); buf = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('data: ')) continue;
        try { const m = JSON.parse(line.slice(6)); window.__msgs.push({msg: m.msg, event: m.event_id, frame: window.__frame}); }
        catch (e) {}
      }
    }
  })();
  return new Response(theirs, {headers: resp.headers, status: resp.status});
};
// The answer text a person sees on each side (Gradio's passing status badges left out).
new MutationObserver(() => {
  for (const i of [0, 1]) {
    const el = document.getElementById('live-side-' + i); if (!el) continue;
    const text = [...el.querySelectorAll('.arena-answer')].filter(e => e.offsetParent !== null)
      .map(e => e.innerText).join('\n');
    if (text !== (el.__last || '')) { el.__last = text; window.__changes.push({side: i, frame: window.__frame, text}); }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _models_yaml(path: Path, tiny_models: dict[str, Path], max_tokens: dict[str, int]) -> Path:
    """Each tiny model once per max_tokens value: ``polyglot-N`` and ``llama-N``, greedy."""
    lines = ["models:"]
    for label, n in max_tokens.items():
        lines.append(
            f"  - {{name: polyglot-{label}, kind: local, path: '{tiny_models['polyglot-tiny']}',"
            f" template: koalpaca, options: {{max_tokens: {n}, temperature: 0}}}}"
        )
        lines.append(
            f"  - {{name: llama-{label}, kind: local, path: '{tiny_models['llama-tiny']}',"
            f" options: {{max_tokens: {n}, temperature: 0}}}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def live_arena(tiny_models, tmp_path):
    # The short pair first: the replay tab opens a turn for the first two models on every page load.
    config = _models_yaml(tmp_path / "models.yaml", tiny_models, {"short": 128, "mid": 512, "long": 1024})
    db = str(tmp_path / "ratings.db")
    with Store.open(db) as store:
        store.add_annotator("지혜", "pw-1234")
    with serve(config, db, tmp_path / "serve.log") as url:
        yield url


@contextlib.contextmanager
def _live_page(url: str, models: list[str]):
    """Chromium logged in, Live tab open, ``models`` picked, the stream watcher installed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.add_init_script(WATCH)
        login(page, url, "지혜", "pw-1234")
        page.get_by_role("tab", name="실시간 비교").click(timeout=60_000)
        labels = page.locator("#live-models label")
        labels.first.wait_for(timeout=60_000)
        for label in labels.all():
            if label.locator("input").is_checked() != (label.inner_text().strip() in models):
                label.click()
        try:
            yield page
        finally:
            browser.close()


def _send(page) -> None:
    page.locator("#live-message textarea").fill(PROMPT)
    page.evaluate("window.__msgs = []; window.__changes = []; window.__joins = []")
    page.locator("#live-send").click()


# The completion of the live answer that the Send click chained (api_name "answer"), once it has come.
ANSWER_DONE = """() => {
  const dep = window.gradio_config.dependencies.find(d => d.api_name === 'answer');
  const join = window.__joins.find(j => j.fn === dep.id);
  return join && window.__msgs.find(m => m.msg === 'process_completed' && m.event === join.event);
}"""


def test_the_page_shows_the_final_text_as_soon_as_the_server_is_done(live_arena):
    """Two 1024-token answers: once the event's completion has reached the page, each side's text changes
    at most twice more (the last update or two still being drawn), not a backlog of updates. (Before:
    every update resent both whole answers, ~1.7 MB here, and the page went on applying its backlog for
    many frames after the server had finished.) Changes are counted, not frames: a frame on this shared
    2-core machine can take 50 ms for reasons of its own (one CI run drew the final text 3 frames late
    with nothing left queued)."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with _live_page(live_arena, ["polyglot-long", "llama-long"]) as page:
        _send(page)
        for i in (0, 1):  # the timing line comes with the event's last update
            expect(page.locator(f"#live-timing-{i}")).to_contain_text("TTFT", timeout=180_000)
        done = page.wait_for_function(ANSWER_DONE).json_value()
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        msgs, changes = page.evaluate("window.__msgs"), page.evaluate("window.__changes")
        page.screenshot(path=str(ARTIFACTS / "live-streamed.png"), full_page=True)

    done_frame = done["frame"]
    updates = sum(m["msg"] == "process_generating" and m["event"] == done["event"] for m in msgs)
    for side in (0, 1):
        mine = [c for c in changes if c["side"] == side]
        final = mine[-1]["text"]
        assert len(final) > 1000, f"side {side} did not stream a long answer: {final[:200]!r}"
        late = [c for c in mine if c["frame"] > done_frame]
        assert len(late) <= 2, (
            f"side {side}: the text changed {len(late)} more times after the server's completion reached the "
            f"page ({len(mine)} changes, {updates} updates): the page is applying a backlog"
        )


def test_stop_takes_effect_on_the_page_at_once(live_arena):
    """Stop in the middle of two 1024-token answers: the cursor is gone by the next frame, the text changes at
    most twice more (updates already on the wire), and the answers end far short of their full length."""
    from playwright.sync_api import expect

    with _live_page(live_arena, ["polyglot-long", "llama-long"]) as page:
        _send(page)
        page.wait_for_function(
            "(document.getElementById('live-answer-0')?.innerText || '').length > 200", timeout=180_000
        )
        # Click, then look at the page in the next animation frame (Gradio runs the button's js a tick later).
        at_stop = page.evaluate("""() => new Promise(resolve => {
            document.getElementById('live-stop').click();
            const changes = window.__changes.length;
            requestAnimationFrame(() => {
                const cursor = [...document.querySelectorAll('#live-side-0 .arena-cursor')]
                    .find(e => e.offsetParent !== null);
                resolve({changes, cursor: cursor ? getComputedStyle(cursor, '::after').content : null});
            });
        })""")
        # The cancelled event still ends with a completion message; after it nothing more can come.
        page.wait_for_function(ANSWER_DONE, timeout=60_000)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        changes = page.evaluate("window.__changes")
        page.screenshot(path=str(ARTIFACTS / "live-stopped.png"), full_page=True)
        # The next message streams again, with its cursor.
        _send(page)
        expect(page.locator("#live-timing-1")).to_contain_text("TTFT", timeout=180_000)

    assert at_stop["cursor"] in ("none", None), f"the streaming cursor was still drawn after Stop: {at_stop}"
    after = changes[at_stop["changes"] :]
    assert len(after) <= 2, f"the page kept changing after Stop: {len(after)} more changes"
    final0 = [c["text"] for c in changes if c["side"] == 0][-1]
    assert len(final0) < 3000, f"side A ran on to {len(final0)} characters after Stop"


def test_bytes_sent_for_an_answer_grow_linearly_with_its_length(live_arena):
    """The raw event stream of one live answer: 4x the tokens cost about 4x the bytes (each update sends
    only the new characters), not 16x (each update resending the whole answer)."""

    async def answer_bytes(models: list[str]) -> tuple[int, int]:
        async with GradioSession(live_arena, timeout=180) as s:
            assert await s.login("지혜", "pw-1234")
            await s.load_config()
            # The page load fills the model picker with what this account may use (arena.web.policies).
            picker = next(c["id"] for c in s.config["components"] if c.get("props", {}).get("elem_id") == "live-models")
            filled = await s.call(next(d for d in s.config["dependencies"] if d["outputs"] == [picker]))
            assert filled.ok, filled.output
            started = await s.call(s.dependency(target=("live-send", "click")), live_message=PROMPT, live_models=models)
            assert started.ok, started.output
            result = await s.call(s.dependency("answer"))
            assert result.ok, result.output
            return result.sse_bytes, len(result.streamed)

    async def run() -> dict[str, tuple[int, int]]:
        return {n: await answer_bytes([f"polyglot-{n}", f"llama-{n}"]) for n in ("short", "mid")}

    sizes = asyncio.run(run())
    (short, short_updates), (mid, mid_updates) = sizes["short"], sizes["mid"]
    ratio = mid / short
    print(
        f"live answer SSE bytes: 2x128 tokens {short} ({short_updates} updates), 2x512 tokens {mid} "
        f"({mid_updates} updates), ratio {ratio:.2f}"
    )
    assert ratio < 6, (
        f"512 tokens cost {ratio:.1f}x the bytes of 128 tokens ({mid} vs {short} bytes, "
        f"{mid_updates} vs {short_updates} updates): not linear"
    )
