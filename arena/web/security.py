"""The arena's own login: session cookies backed by the store, login throttling, and an origin guard.

Gradio's built-in login keeps tokens in one process's memory forever, sets a separate cookie per mounted
app (so / and /en/ each asked for a password), and its CORS middleware echoes any localhost origin with
credentials. The arena replaces all three: one ``arena_session`` cookie for both languages, resolved
through the ``sessions`` table by the ``auth_dependency`` Gradio calls on every request (so handlers
still read ``request.username``), throttled logins, and only its own origin (plus ``--allow-origin``
ones) allowed to change anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from arena.core.i18n import t
from arena.store.store import LoginResult

log = logging.getLogger("arena.web.security")

COOKIE = "arena_session"
DEFAULT_IDLE_MINUTES = 12 * 60
# Per client address, wrong logins within the window before that address is refused unchecked.
CLIENT_FAILURE_LIMIT = 20
CLIENT_WINDOW_S = 600.0
# How long a resolved session is trusted without asking the store again. A password change, a disabled
# account or a logout in another process takes effect within this time; one lookup a second per open
# page instead of one per request (every event is 2-3 requests).
SESSION_CACHE_S = 1.0
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Language of each mounted app: its path prefix, its page and its login/logout routes.
LANG_PREFIX = {"ko": "", "en": "/en"}


def lang_of_path(path: str) -> str:
    """Which language's app a request path belongs to."""
    return "en" if path == "/en" or path.startswith("/en/") else "ko"


class ClientThrottle:
    """Wrong logins per client address in a sliding window, in this process's memory."""

    def __init__(self, limit: int = CLIENT_FAILURE_LIMIT, window_s: float = CLIENT_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._refusing: set[str] = set()  # addresses already logged as throttled
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """0 if ``client`` may try a password now, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window_s:
                failures.popleft()
            if not failures:
                del self._failures[client]
                self._refusing.discard(client)
                return 0.0
            if len(failures) < self.limit:
                self._refusing.discard(client)
                return 0.0
            wait = failures[0] + self.window_s - now
            if client not in self._refusing:
                self._refusing.add(client)
                log.warning(
                    "login: refusing logins from %s for %.0f s: %d wrong logins in %.0f min",
                    client,
                    wait,
                    len(failures),
                    self.window_s / 60,
                )
            return wait

    def failed(self, client: str) -> None:
        """Count one wrong login from ``client``."""
        with self._lock:
            self._failures.setdefault(client, deque()).append(time.monotonic())


class Authenticator:
    """Logins under both throttles, with at most a few password checks running at once."""

    def __init__(self, store: Any, *, clients: ClientThrottle | None = None, checks: int | None = None) -> None:
        self.store = store
        self.clients = clients or ClientThrottle()
        # scrypt takes ~70 ms of a core and leaves the GIL: unbounded, a burst of logins took every
        # core from the event loop and from handlers. Half the cores, at least one, is what they get.
        self._checks = asyncio.Semaphore(checks or max(1, (os.cpu_count() or 2) // 2))

    async def login(self, name: str, password: str, client: str) -> LoginResult:
        """Check ``name``/``password`` from address ``client``; refused before any check when throttled."""
        if wait := self.clients.retry_after(client):
            return LoginResult(False, "throttled", wait)
        async with self._checks:
            # Checked again once it is this attempt's turn: a burst queued behind the semaphore is
            # refused as soon as its first wrong guesses have been counted.
            if wait := self.clients.retry_after(client):
                return LoginResult(False, "throttled", wait)
            result = await asyncio.to_thread(self.store.login, name, password)
        if not result.ok:
            self.clients.failed(client)
        if result.locked_now:
            log.warning(
                "login: account %r locked for %.0f s after %d wrong passwords in a row (last from %s)",
                name,
                result.retry_after_s,
                result.failures,
                client,
            )
        return result


class SessionResolver:
    """Session cookie -> account name through the store, each answer trusted for SESSION_CACHE_S."""

    def __init__(self, store: Any, idle: dt.timedelta, cache_s: float = SESSION_CACHE_S) -> None:
        self.store, self.idle, self.cache_s = store, idle, cache_s
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def user(self, token: str | None) -> str | None:
        """The logged-in account of a cookie token, or None."""
        if not token:
            return None
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[1] < self.cache_s:
            return hit[0]
        name = await asyncio.to_thread(self.store.session_user, token, idle=self.idle)
        if len(self._cache) > 10_000:  # forget stale entries rather than grow with every token ever seen
            self._cache = {k: v for k, v in self._cache.items() if now - v[1] < self.cache_s}
        self._cache[token] = (name, now)
        return name

    def forget(self, token: str) -> None:
        """Drop a token from the cache (after this process logged it out)."""
        self._cache.pop(token, None)

    async def from_request(self, request: Any) -> str | None:
        """Gradio's ``auth_dependency``: the account of the request's session cookie, or None."""
        return await self.user(request.cookies.get(COOKIE))


# ------------------------------------------------------------------------------------------ origin guard


def _netloc(url_or_host: str, default_scheme: str = "http") -> str | None:
    """``host:port`` of an origin or a Host header, default ports made explicit; None if unparsable."""
    if "://" not in url_or_host:
        url_or_host = f"{default_scheme}://{url_or_host}"
    try:
        parts = urlsplit(url_or_host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return f"{(parts.hostname or '').lower()}:{port}" if parts.hostname else None


def normalize_origin(origin: str) -> str:
    """``scheme://host:port`` for an ``--allow-origin`` value; ValueError if it is not an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"--allow-origin {origin!r}: expected an origin such as https://arena.example.org:8443")
    # As a browser writes it in the Origin header: the default port left out, the host in lower case.
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--allow-origin {origin!r}: the port is not a number from 1 to 65535") from None
    return f"{parts.scheme}://{parts.hostname.lower()}" + (f":{port}" if port and port != default else "")


class OriginGuard:
    """ASGI middleware: only the arena's own origin and the configured ones may change state.

    Refuses (403) state-changing requests, logout, websocket connections and ``/gradio_api/token``
    when the browser says they come from another origin (``Origin``, else ``Sec-Fetch-Site``), and
    strips ``Access-Control-Allow-*`` from answers to any origin that is not allowed, so no other page,
    not even one served by another program on this machine, can read what the arena answers.
    Requests without either header (curl, scripts, `arena adapters add`) are not a browser acting on
    someone's behalf and pass.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allow_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {normalize_origin(o) for o in allow_origins}

    def _cross_origin(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple[bool, bool]:
        """(is the request cross-origin, is its origin one of the configured ones)."""
        origin = headers.get("origin")
        if origin is not None:
            if origin == "null":  # sandboxed frames, file:// pages, some redirects: never trusted
                return True, False
            scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
            own = _netloc(headers.get("host", ""), scheme)
            if own is not None and _netloc(origin) == own:
                return False, False
            try:
                configured = normalize_origin(origin) in self.allowed
            except ValueError:
                configured = False
            return not configured, configured
        # No Origin (a GET, or an old browser): Fetch Metadata still tells a cross-site request apart.
        # Another port of the same host is "same-site", not "same-origin": refused too.
        return headers.get("sec-fetch-site") in ("cross-site", "same-site"), False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cross, configured = self._cross_origin(scope, headers)
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if cross and (
            scope["type"] == "websocket"
            or method in STATE_CHANGING
            or path.endswith("/logout")
            or path.rstrip("/").endswith("/gradio_api/token")
        ):
            log.warning(
                "refused a cross-origin %s %s from %s",
                method if scope["type"] == "http" else "websocket",
                path,
                headers.get("origin") or headers.get("sec-fetch-site"),
            )
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _plain(send, 403, "cross-origin request refused")
            return
        if "origin" not in headers or configured:
            await self.app(scope, receive, send)
            return

        async def send_stripped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-allow-")
                ]
            await send(message)

        await self.app(scope, receive, send_stripped)


async def _plain(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------ login pages

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f6f7f9; margin: 0; }}
main {{ max-width: 360px; margin: 12vh auto; background: #fff; border: 1px solid #dde1e6; border-radius: 10px;
        padding: 24px 28px; }}
h1 {{ font-size: 1.2em; margin: 0 0 16px; }}
label {{ display: block; margin: 12px 0 4px; font-size: 0.9em; color: #333; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; border: 1px solid #bbb; border-radius: 6px; font-size: 1em; }}
button {{ margin-top: 18px; width: 100%; padding: 9px; border: 0; border-radius: 6px; background: #f97316;
          color: #fff; font-size: 1em; cursor: pointer; }}
.error {{ background: #fff0f0; border: 1px solid #f5a3a3; color: #8a1f1f; border-radius: 6px; padding: 8px;
          margin-bottom: 8px; }}
.lang {{ float: right; font-size: 0.9em; }}
</style></head>
<body><main>
<a class="lang" href="{other_href}">{other_label}</a>
<h1>{title}</h1>
{error}
<form method="post" action="{action}">
<label for="username">{name_label}</label>
<input id="username" name="username" type="text" autocomplete="username" autofocus required value="{name}">
<label for="password">{password_label}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>
</form>
</main></body></html>
"""


def login_page(lang: str, *, error: str = "", name: str = "") -> str:
    """The login form of one language (by the path, not the browser's language)."""
    other = "ko" if lang == "en" else "en"
    return _PAGE.format(
        lang=lang,
        title=html.escape(t(lang, "title")),
        action=f"{LANG_PREFIX[lang]}/login",
        other_href=f"{LANG_PREFIX[other]}/",
        other_label=html.escape(t(lang, "login_other_lang")),
        name_label=html.escape(t(lang, "login_name")),
        password_label=html.escape(t(lang, "login_password")),
        submit=html.escape(t(lang, "login_submit")),
        name=html.escape(name),
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
    )


def refusal_text(lang: str, result: LoginResult) -> str:
    """What the login page says about a refused login."""
    if result.reason in ("locked", "throttled"):
        return t(lang, "login_locked", minutes=max(1, round(result.retry_after_s / 60 + 0.49)))
    return t(lang, "login_wrong")


class LoginGate:
    """ASGI middleware: the page of either language answers a visitor without a session with the login form."""

    def __init__(self, app: Callable[..., Awaitable[None]], sessions: SessionResolver) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and scope.get("path") in ("/", "/en/"):
            if await self.sessions.user(Request(scope).cookies.get(COOKIE)) is None:
                body = login_page(lang_of_path(scope["path"])).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
                return
        await self.app(scope, receive, send)


def mount_login(app: Any, store: Any, auth: Authenticator, sessions: SessionResolver, *, secure: bool = False) -> None:
    """Add POST /login, /en/login, /logout and /en/logout to the FastAPI ``app`` (before the UI mounts)."""

    def wants_page(request: Request) -> bool:
        # A browser's form post asks for HTML; a script (the tests' HTTP sessions, the load benchmark)
        # keeps the JSON answers of Gradio's /login it was written against.
        return "text/html" in request.headers.get("accept", "")

    async def login(request: Request, username: str = Form(""), password: str = Form("")) -> Response:
        lang = lang_of_path(request.url.path)
        name = username.strip()
        client = request.client.host if request.client else "?"
        result = await auth.login(name, password, client)
        if not result.ok:
            status = 429 if result.reason in ("locked", "throttled") else 400
            headers = {"Retry-After": str(int(result.retry_after_s) + 1)} if status == 429 else None
            if wants_page(request):
                return HTMLResponse(
                    login_page(lang, error=refusal_text(lang, result), name=name), status, headers=headers
                )
            return JSONResponse({"detail": refusal_text("en", result)}, status, headers=headers)
        token = await asyncio.to_thread(store.create_session, name, purge_idle=sessions.idle)
        response: Response = (
            RedirectResponse(f"{LANG_PREFIX[lang]}/", 303) if wants_page(request) else JSONResponse({"success": True})
        )
        # One cookie for / and /en/ (Path=/); Lax: sent when following a link to the arena, never with
        # another site's form posts or fetches (and the origin guard refuses those anyway).
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/")
        return response

    async def logout(request: Request) -> Response:
        lang = lang_of_path(request.url.path)
        token = request.cookies.get(COOKIE)
        if token:
            sessions.forget(token)
            await asyncio.to_thread(store.end_session, token)
        response: Response = (
            RedirectResponse(f"{LANG_PREFIX[lang]}/", 303) if wants_page(request) else JSONResponse({"success": True})
        )
        response.delete_cookie(COOKIE, path="/")
        return response

    async def no_get_logout() -> Response:
        # Gradio's own GET /logout would run otherwise (and a link or an <img> could log anyone out).
        return JSONResponse({"detail": "log out with POST"}, 405, headers={"Allow": "POST"})

    for prefix in LANG_PREFIX.values():
        app.add_api_route(f"{prefix}/login", login, methods=["POST"], include_in_schema=False)
        app.add_api_route(f"{prefix}/logout", logout, methods=["POST"], include_in_schema=False)
        app.add_api_route(f"{prefix}/logout", no_get_logout, methods=["GET"], include_in_schema=False)
