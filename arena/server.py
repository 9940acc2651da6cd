"""Assemble and run the web app: Korean UI at /, English at /en/, login backed by the store."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from arena import PROJECT_ROOT
from arena.dialogs import load_dialogs, eval_set_files

log = logging.getLogger(__name__)

DEMO_USER = "demo"


@dataclass
class ServeConfig:
    """Where the app listens and what it serves."""

    models_config: Path
    db: str
    eval_sets_dir: Path = PROJECT_ROOT / "eval_sets"
    host: str = "127.0.0.1"  # loopback unless told otherwise: ratings are not for the whole network
    port: int = 7860
    auth: bool = True


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
    from arena.metrics import default_splitter
    from arena.store import Store
    from arena.ui.services import Services
    from backends.registry import build_registry

    dialogs = load_dialogs(eval_set_files(config.eval_sets_dir))
    registry = build_registry(config.models_config)
    store = Store.open(config.db)
    return Services(store=store, registry=registry, dialogs=dialogs, splitter=default_splitter())


def create_app(services):
    """A FastAPI app with the Korean UI at / and the English UI at /en/."""
    import gradio as gr
    from fastapi import FastAPI

    from arena.ui.app import CSS, SHORTCUTS_JS, build_app

    app = FastAPI(title="arena")
    # POST /api/adapters (`arena adapters add`); registered before the UI mounts at "/" so it is matched first.
    from arena.adapters import mount_api

    mount_api(app, services)
    auth = services.store.verify_password
    for lang, path in (("en", "/en"), ("ko", "")):
        blocks = build_app(services, lang=lang).queue(default_concurrency_limit=None)
        app = gr.mount_gradio_app(app, blocks, path=path or "/", auth=auth, css=CSS, head=SHORTCUTS_JS, ssr_mode=False,
                                  footer_links=[])
    return app


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
    import uvicorn

    services = build_services(config)
    preload(services.registry)
    app = create_app(services)
    print(f"arena: serving {len(services.dialogs)} dialogs and {len(services.registry)} models")
    print(f"arena: open http://{config.host}:{config.port}/  (English: http://{config.host}:{config.port}/en/)")
    if banner:
        print(banner)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
