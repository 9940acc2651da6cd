"""Assemble and run the web app: Korean UI at /, English at /en/, login backed by the store."""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from arena import PROJECT_ROOT
from arena.core.dialogs import eval_set_files, load_dialogs

log = logging.getLogger(__name__)

DEMO_USER = "demo"
MAX_REQUEST_BYTES = 1 << 20


@dataclass
class ServeConfig:
    """Where the app listens and what it serves."""

    models_config: Path
    db: str
    eval_sets_dir: Path = PROJECT_ROOT / "eval_sets"
    host: str = "127.0.0.1"  # loopback unless told otherwise: ratings are not for the whole network
    port: int = 7860
    auth: bool = True
    session_idle_minutes: float = 12 * 60  # a login ends after this long without a request
    allow_origins: tuple[str, ...] = ()  # other origins (a proxy's, a dashboard's) the browser may call from


def ensure_demo_account(store) -> str:
    """Create or reset the demo researcher account and return its new password (printed by `arena demo`)."""
    password = secrets.token_urlsafe(9)
    if store.get_annotator(DEMO_USER) is None:
        store.add_annotator(DEMO_USER, password, role="researcher")
    else:
        store.set_password(DEMO_USER, password)
    return password


def build_services(config: ServeConfig):
    """Open the store, load eval sets and models; fails early with a clear message on bad input."""
    from arena.core.metrics import default_splitter
    from arena.store import Store
    from arena.web.services import Services
    from backends.registry import build_registry

    dialogs = load_dialogs(eval_set_files(config.eval_sets_dir))
    registry = build_registry(config.models_config)
    store = Store.open(config.db)
    return Services(store=store, registry=registry, dialogs=dialogs, splitter=default_splitter())


def create_app(services, *, session_idle_minutes: float = 12 * 60, allow_origins: tuple[str, ...] = ()):
    """A FastAPI app with the Korean UI at / and the English UI at /en/, behind the arena's own login."""
    import datetime as dt

    import gradio as gr
    from fastapi import FastAPI

    from arena.web.ui.app import BLIND_SHORTCUTS_JS, CSS, SHORTCUTS_JS, build_app, toast_title_js

    try:
        # Annotators send scores, comments and chat messages, never files: a request body over 1 MiB is
        # refused (413) before it is read into memory or stored as a "comment".
        app = FastAPI(title="arena", max_body_size=MAX_REQUEST_BYTES)
    except TypeError:  # FastAPI before request body limits (0.16x): unlimited, as before
        app = FastAPI(title="arena")
    from starlette.middleware.cors import CORSMiddleware

    from arena.web.api import mount_api
    from arena.web.security import Authenticator, LoginGate, OriginGuard, SessionResolver, mount_login

    store = services.store
    authenticator = Authenticator(store)
    sessions = SessionResolver(store, dt.timedelta(minutes=session_idle_minutes))
    # Routes registered before the UI mounts at "/" are matched first: POST /api/adapters (`arena
    # adapters add`), and the arena's login and logout, which replace Gradio's.
    mount_api(app, services, authenticator)
    mount_login(app, store, authenticator, sessions)
    # With a CORSMiddleware on the parent, Gradio leaves out its own, which answers any localhost
    # origin, with credentials. This one answers only the configured origins (none by default).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(allow_origins),
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(LoginGate, sessions=sessions)
    app.add_middleware(OriginGuard, allow_origins=allow_origins)  # outermost: refuses before anything runs

    for lang, path in (("en", "/en"), ("ko", "")):
        blocks = build_app(services, lang=lang).queue(default_concurrency_limit=None)
        hide_api_description(blocks)
        skip_queue_analytics(blocks)
        # auth_dependency: Gradio asks it for the user of every request (request.username in handlers).
        app = gr.mount_gradio_app(
            app,
            blocks,
            path=path or "/",
            auth_dependency=sessions.from_request,
            css=CSS,
            head=SHORTCUTS_JS + BLIND_SHORTCUTS_JS + toast_title_js(lang),
            ssr_mode=False,
            footer_links=[],
        )
    return app


def hide_api_description(blocks) -> None:
    """Leave every event out of Gradio's API description; the page still calls each one by its index."""
    # Gradio 6 embeds that description, with the choices of every dropdown (model names, eval sets, the
    # adapters folder), in the login page it serves to anyone, also for `/?all_endpoints=true`; the
    # arena offers no API docs anyway (footer_links=[] hides their link).
    for fn in blocks.fns.values():
        fn.api_visibility = "private"


def skip_queue_analytics(blocks) -> None:
    """Stop Gradio from summarising its event log after every event (it feeds a dashboard the arena keeps off)."""
    # That summary is a pandas DataFrame over the last 10,000 events, rebuilt on every event: 8-14 ms of
    # CPU each time, a third of what a blind vote costs the server under load. Gradio reads the same
    # setting from GRADIO_ANALYTICS_CACHE_FREQUENCY, but only when a queue is created.
    queue = blocks._queue
    if hasattr(queue, "ANAYLTICS_CACHE_FREQUENCY"):  # (sic) the attribute's name in Gradio 6
        queue.ANAYLTICS_CACHE_FREQUENCY = 10**9


# How long a thread may hold the GIL while another waits for it. The event loop (Gradio's queue, every
# stream) shares it with the threads that run handlers and store writes; at Python's default (5 ms) a
# busy handler thread kept the loop waiting that long at each hand-over. With 1 ms the load benchmark's
# p99 went from ~400 to ~250 ms at 100 annotators (docs/reliability.md).
GIL_SWITCH_INTERVAL_S = 0.001


def skip_missing_matplotlib() -> None:
    """Make ``import matplotlib`` fail at once when it is not installed (the arena plots with plotly)."""
    # Gradio tries to import it twice around every event (to switch its backend); a failed import is not
    # remembered, so each one searched every sys.path entry again: ~4% of the CPU a cheap event costs.
    import importlib.util

    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # Python's marker for "cannot import"


def preload(registry) -> None:
    """Load in-process models before the first page view, so the first answer is not a cold start.
    A model that fails to load is left alone: its side shows the error when it is used."""
    import asyncio

    async def load_all() -> None:
        # One at a time: transformers' lazy imports are not safe to trigger from two threads at once.
        for name in registry.names():
            backend = registry[name]
            if hasattr(backend, "load"):
                try:
                    await backend.load()
                except Exception as exc:  # noqa: BLE001 - the side shows it when the model is used
                    log.warning("preloading %s failed: %s", name, exc)

    asyncio.run(load_all())


def run(config: ServeConfig, *, banner: str = "") -> None:
    """Serve until interrupted, printing the URL once the server is about to accept connections."""
    import gc

    import uvicorn

    skip_missing_matplotlib()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    services = build_services(config)
    preload(services.registry)
    app = create_app(services, session_idle_minutes=config.session_idle_minutes, allow_origins=config.allow_origins)
    # What start-up built (Gradio, models, Kiwi, the pages: ~250k objects) lives as long as the server.
    # Frozen, the collector stops walking it: a full collection, which stops every request, went from
    # ~200 ms to ~75 ms with 100 open sessions.
    gc.collect()
    gc.freeze()
    print(f"arena: serving {len(services.dialogs)} dialogs and {len(services.registry)} models")
    print(f"arena: open http://{config.host}:{config.port}/  (English: http://{config.host}:{config.port}/en/)")
    if banner:
        print(banner)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
