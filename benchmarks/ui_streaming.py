"""Streaming through the arena vs the backends' own speed, 4 sides at once, measured in a real browser.

For each replayed turn the arena streams four local models side by side. The browser records when
each side's text first appears and when it stops changing; the store holds the backend's own TTFT
and tokens/s for exactly those generations. The table compares the two:

    .venv/bin/python benchmarks/ui_streaming.py [--turns 5] [--profile test|demo] [--max-tokens 64]

"added TTFT" = (first text in the browser - the moment the turn was requested) - backend TTFT;
"browser tok/s" = completion tokens / (last change - first text) as seen in the page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arena.store import Store  # noqa: E402
from tests.browser import CHROMIUM_ARGS, chromium_path, login, serve  # noqa: E402
from training.tiny import ensure_tiny_models  # noqa: E402

SIDES = 4

RECORD = """
window.__t = {};
window.__mark = (i) => {
  // The answer as a person sees it: not Gradio's status tracker beside it (opacity 0, but in innerText).
  const el = document.querySelector('#replay-answer-' + i + ' .arena-answer');
  const text = el ? el.innerText.trim() : '';
  const rec = window.__t[i] || (window.__t[i] = {first: null, last: null, text: '', cleared: false});
  // Ignore the previous turn's answer until the arena has cleared this side for the new turn.
  if (!text) { rec.cleared = true; return; }
  if (rec.cleared && text !== rec.text) { const now = performance.now(); if (rec.first === null) rec.first = now; rec.last = now; rec.text = text; }
};
new MutationObserver(() => { for (let i = 0; i < 4; i++) window.__mark(i); })
  .observe(document, {subtree: true, childList: true, characterData: true});
"""


def models_yaml(path: Path, dirs: dict[str, Path], max_tokens: int) -> Path:
    """Four sides: each tiny model twice, sampled (greedy tiny models stop after a few tokens, too short to time)."""
    lines = ["models:"]
    for name, temp in (("polyglot-tiny", 0.9), ("llama-tiny", 0.9), ("polyglot-tiny", 1.0), ("llama-tiny", 1.0)):
        label = f"{name}-t{temp}"
        tmpl = ", template: koalpaca" if name.startswith("polyglot") else ""
        lines.append(
            f"  - {{name: {label}, kind: local, path: '{dirs[name]}'{tmpl},"
            f" options: {{max_tokens: {max_tokens}, temperature: {temp}, seed: 1}}}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def run(turns: int, profile: str, max_tokens: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    dirs = ensure_tiny_models(ROOT / (".cache/tiny-test" if profile == "test" else "models"), profile)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = str(tmp / "bench.db")
        with Store.open(db) as store:
            store.add_annotator("bench", "bench-pw")
        with (
            serve(models_yaml(tmp / "models.yaml", dirs, max_tokens), db, tmp / "serve.log") as url,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.add_init_script(RECORD)
            login(page, url, "bench", "bench-pw")
            page.wait_for_selector("#replay-models")
            for i in range(2, SIDES):  # tick the third and fourth model
                page.locator("#replay-models label").nth(i).click()
            page.wait_for_timeout(500)
            for turn in range(turns):
                # Wait until the previous generation is done (scores become enabled), then request the next turn.
                for i in range(SIDES):
                    page.locator(f"#replay-score-{i} input").first.wait_for(state="attached")
                    page.wait_for_function(
                        f"!document.querySelector('#replay-score-{i} input').disabled", timeout=300_000
                    )
                page.evaluate("window.__t = {}; window.__start = performance.now()")
                page.locator("#replay-next").click()
                for i in range(SIDES):
                    page.wait_for_function(
                        f"!document.querySelector('#replay-score-{i} input').disabled", timeout=300_000
                    )
                rec = page.evaluate("""({t: window.__t, start: window.__start,
                    dialog: document.querySelector('#replay-dialog input').value,
                    turn: document.querySelector('#replay-turn input').value,
                    models: [0, 1, 2, 3].map(i => document.getElementById('replay-header-' + i).innerText)})""")
                rows.append({"turn": turn, "browser": rec})
            browser.close()
        with Store.open(db) as store:
            gens = store.generations_frame()
    return combine(rows, gens)


def combine(rows: list[dict], gens) -> list[dict]:
    """Pair each browser observation with the stored generation of the same dialog, turn and model."""
    import re

    out = []
    for row in rows:
        rec = row["browser"]
        dialog_id = rec["dialog"].split(" · ")[0]
        turn_index = int(re.search(r"\d+", rec["turn"]).group())
        for i, header in enumerate(rec["models"]):
            model = header.splitlines()[-1].split("·")[-1].strip()  # the queue badge may precede it
            g = gens[(gens["dialog_id"] == dialog_id) & (gens["turn_index"] == turn_index) & (gens["model"] == model)]
            seen = rec["t"].get(str(i)) or rec["t"].get(i)
            if g.empty or not seen or seen["first"] is None or not g.iloc[0]["tokens"]:
                continue
            g = g.iloc[0]
            span = (seen["last"] - seen["first"]) / 1000
            out.append(
                {
                    "model": model,
                    "tokens": int(g["tokens"]),
                    "backend_ttft_ms": g["ttft_ms"],
                    "backend_tok_s": g["tokens_per_s"],
                    "browser_ttft_ms": seen["first"] - rec["start"],
                    "browser_tok_s": max(int(g["tokens"]) - 1, 1) / span if span > 0 else float("nan"),
                }
            )
    return out


def report(results: list[dict]) -> str:
    """The comparison table, one row per model plus the total."""
    by_model: dict[str, list[dict]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    lines = [
        "| model | n | backend tok/s | browser tok/s | ratio | backend TTFT ms | added TTFT ms (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, rs in [*by_model.items(), ("all", results)]:
        rs = [r for r in rs if r["browser_tok_s"] == r["browser_tok_s"]]  # drop one-update answers (no span)
        if not rs:
            continue
        b = statistics.median(r["backend_tok_s"] for r in rs)
        w = statistics.median(r["browser_tok_s"] for r in rs)
        bt = statistics.median(r["backend_ttft_ms"] for r in rs)
        added = statistics.median(r["browser_ttft_ms"] - r["backend_ttft_ms"] for r in rs)
        lines.append(f"| {model} | {len(rs)} | {b:.1f} | {w:.1f} | {w / b:.0%} | {bt:.0f} | {added:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--profile", choices=["test", "demo"], default="test")
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.turns, args.profile, args.max_tokens)
    print(report(results))
    print(
        f"\n{len(results)} side-turns, {args.turns} turns x {SIDES} sides, profile {args.profile}, "
        f"max_tokens {args.max_tokens}; {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
