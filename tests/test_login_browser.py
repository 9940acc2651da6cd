"""The login journey in real Chromium against a real `arena serve` (issue 15 item 8, issue 14 items 4, 6):
the login page speaks the language of its path, not the browser's; the header shows who is logged in
and a logout button; the language link stays in the same tab and needs no second login; logging out of
/en/ ends the Korean session too; and a page served from another local port, in the same browser,
cannot read the session token, log the user out, upload or log them into another account.

Screenshots: test-artifacts/login-ko.png, login-en.png, header-ko.png, header-en.png.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from arena.store import Store
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
PW = "pw-1234"

# What a page on another port of this machine tries, in the browser of someone logged in to the arena.
HOSTILE_PAGE = """<!doctype html><html><body><script>
const ARENA = "%s";
async function attempt(name, run) {
  try { window.__result[name] = await run(); } catch (e) { window.__result[name] = "blocked: " + e; }
}
window.__result = {};
(async () => {
  await attempt("token", async () => (await fetch(ARENA + "/gradio_api/token", {credentials: "include"})).text());
  await attempt("config", async () => (await fetch(ARENA + "/config", {credentials: "include"})).text());
  const form = new FormData(); form.append("files", new Blob(["x"]), "x.txt");
  await attempt("upload", async () => (await fetch(ARENA + "/gradio_api/upload",
                                        {method: "POST", body: form, credentials: "include"})).status);
  // Fire-and-forget variants a page cannot read the answer of, but which would still act.
  await attempt("get_logout", async () => (await fetch(ARENA + "/logout",
                                            {credentials: "include", mode: "no-cors"})).type);
  await attempt("post_logout", async () => (await fetch(ARENA + "/logout",
                                             {method: "POST", credentials: "include", mode: "no-cors"})).type);
  await attempt("en_logout", async () => (await fetch(ARENA + "/en/logout",
                                           {method: "POST", credentials: "include", mode: "no-cors"})).type);
  window.__done = true;
})();
</script></body></html>"""


@pytest.fixture()
def arena(tiny_models, tmp_path):
    config = write_models_yaml(tmp_path / "models.yaml", tiny_models, max_tokens=8)
    db = str(tmp_path / "ratings.db")
    with Store.open(db) as store:
        store.add_annotator("지혜", PW)
        store.add_annotator("mallory", PW)
    log = tmp_path / "serve.log"
    with serve(config, db, log) as url:
        yield url.rstrip("/"), db, log


def hostile_server(arena_url: str) -> tuple[ThreadingHTTPServer, str]:
    """A second local HTTP server, on its own port, serving HOSTILE_PAGE."""
    body = (HOSTILE_PAGE % arena_url).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def switch_language(page, target: str) -> None:
    """Click the header's language link and wait for the other language's page, in this tab."""
    # Gradio reloads its page by itself when its heartbeat stream drops (seen on a loaded 2-core
    # machine): a click that lands during such a reload is lost, so it is repeated, at most twice.
    for _ in range(3):
        page.locator("#lang-switch").click()
        try:
            page.wait_for_url(target, timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; clicked into a reload
            continue
    raise AssertionError(f"the language link did not lead to {target}; the page is at {page.url}")


def test_one_login_for_both_languages_and_logout_in_the_header(arena) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, _ = arena
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        # A Korean browser: the English login page must still be English (by its path).
        context = browser.new_context(locale="ko-KR", viewport={"width": 1300, "height": 900})
        page = context.new_page()
        page.goto(url + "/en/")
        expect(page.locator("button[type=submit]")).to_have_text("Log in")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.screenshot(path=str(ARTIFACTS / "login-en.png"))
        page.goto(url + "/")
        expect(page.locator("button[type=submit]")).to_have_text("로그인")
        page.screenshot(path=str(ARTIFACTS / "login-ko.png"))

        # A wrong password: one clear message, the name kept, no session.
        login(page, url + "/", "지혜", "wrong")
        expect(page.get_by_role("alert")).to_have_text("아이디 또는 비밀번호가 올바르지 않습니다.")
        expect(page.locator("#username")).to_have_value("지혜")

        login(page, url + "/", "지혜", PW)
        expect(page.locator("#account-name")).to_have_text("로그인: 지혜", timeout=60_000)
        expect(page.locator("#logout")).to_have_text("로그아웃")
        page.screenshot(path=str(ARTIFACTS / "header-ko.png"))

        # The language link: same tab, English UI, the same login.
        switch_language(page, url + "/en/")
        expect(page.locator("#account-name")).to_have_text("Logged in as 지혜", timeout=60_000)
        expect(page.locator("#logout")).to_have_text("Log out")
        assert len(context.pages) == 1, "the language link opened another tab"
        assert page.locator("input[type=password]").count() == 0, "asked for a second login"
        page.screenshot(path=str(ARTIFACTS / "header-en.png"))

        # Log out of the English UI: the Korean one is logged out too, the session is gone server-side.
        page.locator("#logout").click()
        expect(page.locator("button[type=submit]")).to_have_text("Log in")
        page.goto(url + "/")
        expect(page.locator("button[type=submit]")).to_have_text("로그인")
        assert context.request.get(url + "/config").status == 401
        assert context.request.get(url + "/en/config").status == 401
        browser.close()


def test_a_page_on_another_local_port_cannot_act_as_the_logged_in_user(arena) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, log = arena
    hostile, hostile_url = hostile_server(url)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context()
            page = context.new_page()
            login(page, url + "/", "지혜", PW)
            expect(page.locator("#account-name")).to_have_text("로그인: 지혜", timeout=60_000)

            other = context.new_page()
            other.goto(hostile_url)
            other.wait_for_function("window.__done === true", timeout=60_000)
            result = other.evaluate("window.__result")
            # Nothing the arena answered could be read by that page ...
            for key in ("token", "config", "upload"):
                assert str(result[key]).startswith("blocked:"), (key, result)
            # ... and nothing it sent acted: still logged in, in both languages.
            assert context.request.get(url + "/config").status == 200, result
            assert context.request.get(url + "/en/config").status == 200, result
            page.reload()
            expect(page.locator("#account-name")).to_have_text("로그인: 지혜", timeout=60_000)

            # A login form posted from that page (to log the victim into the attacker's account) is refused.
            other.set_content(
                f'<form method="post" action="{url}/login"><input name="username" value="mallory">'
                f'<input name="password" value="{PW}"><button id="go">go</button></form>'
            )
            other.click("#go")
            other.wait_for_load_state()
            assert "cross-origin request refused" in other.content()
            page.reload()
            expect(page.locator("#account-name")).to_have_text("로그인: 지혜", timeout=60_000)
            browser.close()
    finally:
        hostile.shutdown()
        hostile.server_close()
    text = log.read_text()
    for refused in ("POST /gradio_api/upload", "GET /gradio_api/token", "/logout", "POST /login"):
        assert "refused a cross-origin" in text and refused in text, refused
