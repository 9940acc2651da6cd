"""How often a reload of the Replay tab comes up without its dialog or turn, in a real browser.

One annotator logs in once; the page is reloaded N times and each time the script waits for both
sides to be scorable, then reads the dialog and turn dropdowns. Gradio 6.31 now and then dropped a
dropdown's choices and value when they came in the first message of a streaming event; Replay now
opens a step in a plain event and streams its answers in the event chained after it.

    .venv/bin/python benchmarks/replay_reloads.py [--reloads 40] [--lang en/] [--checkout DIR]

``--checkout`` serves another checkout of the arena (a ``git worktree`` of an older commit) with this
checkout's virtualenv and tiny models, so before and after are measured the same way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arena.store import Store  # noqa: E402
from tests.browser import CHROMIUM_ARGS, chromium_path, login, serve, write_models_yaml  # noqa: E402
from training.tiny import ensure_tiny_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=40)
    parser.add_argument("--lang", default="en/", help="the app's path: '' (Korean) or 'en/'")
    parser.add_argument("--checkout", type=Path, default=ROOT)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tiny = ensure_tiny_models(ROOT / ".cache" / "tiny-test", "test", progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = write_models_yaml(tmp_path / "models.yaml", tiny)
        db = str(tmp_path / "ratings.db")
        with Store.open(db) as store:
            store.add_annotator("지혜", "pw-1234")
        with serve(config, db, tmp_path / "serve.log", checkout=args.checkout.resolve()) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            login(page, url + args.lang, "지혜", "pw-1234")
            page.locator("#replay-turn").wait_for(timeout=120_000)  # logged in: the app, not the login form
            blank_dialog = blank_turn = 0
            for _ in range(args.reloads):
                page.goto(url + args.lang)
                for i in (0, 1):
                    page.locator(f"#replay-score-{i} input").first.wait_for(timeout=120_000)
                    page.wait_for_function(
                        f"!document.querySelector('#replay-score-{i} input').disabled", timeout=120_000
                    )
                blank_dialog += not page.locator("#replay-dialog input").input_value().strip()
                blank_turn += not page.locator("#replay-turn input").input_value().strip()
            browser.close()
    print("| checkout | page | reloads | dialog empty | turn empty |\n|---|---|---|---|---|")
    print(f"| {args.checkout} | /{args.lang} | {args.reloads} | {blank_dialog} | {blank_turn} |")


if __name__ == "__main__":
    main()
