"""``build_app``: the arena's Gradio Blocks, one language per app (Korean at /, English at /en/)."""

from __future__ import annotations

import html
import json

import gradio as gr

from arena.core.i18n import t
from arena.web.blocks import ArenaBlocks
from arena.web.policies import is_researcher
from arena.web.services import Services
from arena.web.ui import adapters_tab, blind_tab, leaderboard_tab, live_tab, overview, replay_tab, rounds_tab

CSS = """
.arena-del { background: #ffe3e3; color: #a61b1b; text-decoration: line-through; }
.arena-ins { background: #d3f9d8; color: #1b6e2a; text-decoration: none; }
.arena-msg { border-radius: 8px; padding: 6px 10px; margin: 4px 0; }
.arena-user { background: #eef4ff; margin-right: 15%; }
.arena-assistant { background: #f4f4f5; margin-left: 15%; }
.arena-tool { background: #fff8e6; margin-left: 15%; }
.arena-role { font-size: 0.8em; color: #666; }
.arena-toolcall, .arena-toolresult { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 8px; margin: 4px 0; }
.arena-toolcall pre, .arena-toolresult pre { white-space: pre-wrap; margin: 2px 0; font-size: 0.85em; }
.arena-tag { font-size: 0.75em; background: #ddf4ff; border-radius: 4px; padding: 1px 5px; }
.arena-answer { min-height: 3em; white-space: normal; }
.arena-cursor::after { content: "▍"; }
.arena-stopped .arena-cursor::after { content: none; }
.arena-stopped [id^="live-answer-"] { display: none !important; }
.arena-error { background: #fff0f0; border: 1px solid #f5a3a3; border-radius: 6px; padding: 6px; color: #8a1f1f; }
/* A long GT answer scrolls in its own box instead of pushing the form off screen. */
.arena-gt { border-top: 1px dashed #bbb; margin-top: 6px; padding-top: 4px; max-height: 18em; overflow-y: auto; }
.arena-figures { font-size: 0.85em; color: #444; }
.arena-side.arena-active { outline: 2px solid #4c8bf5; border-radius: 8px; }
#replay-submit-bar { position: sticky; bottom: 0; z-index: 20; background: var(--body-background-fill);
                     border-top: 1px solid var(--border-color-primary); padding: 6px 0; align-items: center; }
[id^="replay-answer-"] .arena-answer { max-height: 45vh; overflow-y: auto; }
.arena-account { display: flex; gap: 14px; align-items: center; justify-content: flex-end; }
.arena-account form { margin: 0; }
.arena-account button { border: 1px solid #d0d7de; border-radius: 6px; padding: 3px 10px; background: #fff; cursor: pointer; }
/* The blind tab's status, vote and submit stay at the bottom of the window while the answers scroll.
   Gradio's container clips with overflow: hidden, which makes it a scroll container and defeats
   sticky; overflow: clip clips the same without being one. */
.gradio-container { overflow: clip !important; }
#blind-actions { position: sticky; bottom: 0; z-index: 20; background: var(--body-background-fill);
                 border-top: 1px solid var(--border-color-primary); padding: 6px 0; }
"""

SHORTCUTS_JS = """
<script>
// Replay keys: 1-5 score the highlighted side, then the highlight moves to the next side still unscored;
// Ctrl+Enter submits. A side is always highlighted, and every newly opened turn starts on side A: the
// history carries a data-step marker that changes with each opened turn (a click inside B's comment
// must not carry over to the next turn's keys). Digits are read by physical key (ev.code), so they
// work with the Korean IME on.
(function () {
  let active = 0, step = null;
  const sides = () => Array.from(document.querySelectorAll('[id^="replay-side-"]')).filter(e => e.offsetParent !== null);
  const scored = (side) => !!document.querySelector('#replay-score-' + side.id.split('-').pop() + ' input:checked');
  const mark = () => {
    const list = sides();
    if (active >= list.length) active = 0;
    list.forEach((e, i) => { if (e.classList.contains('arena-active') !== (i === active)) e.classList.toggle('arena-active'); });
  };
  const sync = () => {
    const marker = document.querySelector('#replay-history [data-step]');
    const key = marker ? marker.getAttribute('data-step') : null;
    if (key !== step) { step = key; active = 0; }
    mark();
  };
  // Class changes too: a re-render of a side's column may rewrite its class list and drop the highlight.
  new MutationObserver(sync).observe(document.documentElement,
                                     {childList: true, subtree: true, attributes: true, attributeFilter: ['class']});
  document.addEventListener('keydown', (ev) => {
    const submit = document.getElementById('replay-submit');
    if (!submit || submit.offsetParent === null) return;  // another tab is showing
    if (ev.ctrlKey && ev.key === 'Enter') { submit.click(); ev.preventDefault(); return; }
    const tag = (ev.target.tagName || '').toLowerCase();
    if (tag === 'textarea' || (tag === 'input' && ev.target.type === 'text')) return;
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    const digit = /^(?:Digit|Numpad)([1-5])$/.exec(ev.code || '');
    if (!digit) return;
    const list = sides(); if (!list.length) return;
    if (active >= list.length) active = 0;
    const idx = list[active].id.split('-').pop();
    const radio = document.querySelector('#replay-score-' + idx + ' input[value="' + digit[1] + '"]');
    if (!radio || radio.disabled) return;
    radio.click();
    let next = (active + 1) % list.length;
    for (let k = 1; k < list.length; k++) {
      const j = (active + k) % list.length;
      if (!scored(list[j])) { next = j; break; }
    }
    active = next; mark(); ev.preventDefault();
  });
  document.addEventListener('click', (ev) => {
    const side = ev.target.closest && ev.target.closest('[id^="replay-side-"]');
    if (side) { active = Math.max(0, sides().indexOf(side)); mark(); }
  });
})();
</script>
"""


BLIND_SHORTCUTS_JS = """
<script>
// Blind tab keys (only while it is showing): 1-5 score the highlighted side, then move to the other;
// A / B / T / X pick "A better" / "B better" / tie / both bad; Ctrl+Enter submits the vote.
// Keys are read by physical position (ev.code), so they work with the Korean IME on (A types ㅁ).
// Registered on window in the capture phase, so the replay tab's document listener never sees them.
(function () {
  let active = 0;
  const shown = (e) => !!e && e.offsetParent !== null;
  const sides = () => [0, 1].map(i => document.getElementById('blind-side-' + i)).filter(shown);
  const mark = () => sides().forEach((e, i) => e.classList.toggle('arena-active', i === active));
  const votes = {KeyA: 'left', KeyB: 'right', KeyT: 'tie', KeyX: 'both_bad'};
  const handled = (ev) => { ev.preventDefault(); ev.stopImmediatePropagation(); };
  window.addEventListener('keydown', (ev) => {
    const submit = document.getElementById('blind-submit');
    if (!shown(submit)) return;
    if (ev.ctrlKey && ev.key === 'Enter') { submit.click(); handled(ev); return; }
    const tag = (ev.target.tagName || '').toLowerCase();
    if (tag === 'textarea' || (tag === 'input' && ev.target.type === 'text')) return;
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    if (votes[ev.code]) {
      const radio = document.querySelector('#blind-vote input[value="' + votes[ev.code] + '"]');
      if (radio && !radio.disabled) radio.click();
      handled(ev); return;
    }
    const digit = /^(?:Digit|Numpad)([1-5])$/.exec(ev.code);
    if (!digit) return;
    const list = sides(); if (!list.length) return;
    active = Math.min(active, list.length - 1);
    const idx = list[active].id.split('-').pop();
    const radio = document.querySelector('#blind-score-' + idx + ' input[value="' + digit[1] + '"]');
    if (radio && !radio.disabled) { radio.click(); active = (active + 1) % list.length; mark(); }
    handled(ev);
  }, true);
  document.addEventListener('click', (ev) => {
    const side = ev.target.closest && ev.target.closest('[id^="blind-side-"]');
    if (side) { active = Math.max(0, sides().indexOf(side)); mark(); }
  });
})();
</script>
"""


def toast_title_js(lang: str) -> str:
    """Gradio 6.31 heads every error toast with its type in English ("Error") whatever
    ``gr.Error(title=...)`` says: this rewrites that heading to the page's language as toasts appear."""
    title = json.dumps(t(lang, "toast_error"), ensure_ascii=False)
    return f"""
<script>
(function () {{
  const title = {title} + ' ';
  new MutationObserver(() => {{
    for (const el of document.querySelectorAll('.toast-title.error')) {{
      const text = el.firstChild;  // the type's text node; a count "(2)" follows it in its own node
      if (text && text.nodeType === Node.TEXT_NODE && text.data !== title) text.data = title;
    }}
  }}).observe(document.documentElement, {{subtree: true, childList: true}});
}})();
</script>
"""


def gradio_strings(lang: str) -> gr.I18n:
    """Gradio's own strings that its locales lack (its status announcer reads out the raw key
    ``common.complete``), in the page's language whatever the browser's locale."""
    text = {"common.complete": t(lang, "gradio_complete")}
    return gr.I18n(en=text, ko=text)


def account_bar(lang: str, username: str | None) -> str:
    """The header's right end: the other language (same tab, same login), who is logged in, log out."""
    other, other_path = ("ko", "/") if lang == "en" else ("en", "/en/")
    parts = [f'<a id="lang-switch" href="{other_path}" target="_self" hreflang="{other}">{t(lang, "switch_lang")}</a>']
    if username:
        # A plain form post: the session cookie goes with it and the origin guard sees this page's origin.
        parts.append(f'<span id="account-name">{html.escape(t(lang, "logged_in_as", name=username))}</span>')
        parts.append(
            f'<form method="post" action="{"/en" if lang == "en" else ""}/logout">'
            f'<button id="logout" type="submit">{t(lang, "logout")}</button></form>'
        )
    return f'<div class="arena-account">{"".join(parts)}</div>'


def build_app(services: Services, *, lang: str = "ko") -> gr.Blocks:
    """The whole UI for one language; building has no side effects beyond creating components."""
    with ArenaBlocks(title=t(lang, "title")) as app:
        app.i18n_instance = gradio_strings(lang)  # read by gradio's config route (mount_gradio_app sets none)
        with gr.Row():
            gr.Markdown(f"## {t(lang, 'title')}")
            account = gr.HTML(account_bar(lang, None), elem_id="account-bar")
        with gr.Tabs():
            with gr.Tab(t(lang, "tab_replay"), id="replay"):
                replay_tab.build(app, services, lang)
            with gr.Tab(t(lang, "tab_live"), id="live"):
                live_tab.build(services, lang, app=app)
            with gr.Tab(t(lang, "tab_blind"), id="blind"):
                blind_tab.build(app, services, lang)
            with gr.Tab(t(lang, "tab_overview"), id="overview"):
                overview.build(app, services, lang)
            # Researchers only (shown on load): standings would bias annotators voting in blind rounds.
            with gr.Tab(t(lang, "tab_leaderboard"), id="leaderboard", visible=False) as leaderboard:
                leaderboard_tab.build(services, lang, leaderboard)

            def show_leaderboard(request: gr.Request) -> dict:
                return gr.update(visible=is_researcher(services.store, request.username))

            app.load(show_leaderboard, None, [leaderboard], show_progress="hidden")

            def show_account(request: gr.Request) -> dict:
                return {account: gr.update(value=account_bar(lang, request.username))}

            app.load(show_account, None, [account], show_progress="hidden")
            adapters_tab.build(app, services, lang)  # researchers only: makes its own (hidden) tab
            rounds_tab.build(app, services, lang)  # researchers only: makes its own (hidden) tab
    return app
