"""Adapters tab (researchers only): trained LoRA adapters found on disk, loaded into the arena at run time.

The tab is hidden until the page's user is known to be a researcher, and every handler checks the
role again (a hidden tab's events can still be called). Loading adds ``<base>:<adapter>`` to the shared
registry; the Replay and Live model pickers pick up new models when a page loads.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from arena.adapters import hotload
from arena.core.i18n import t
from arena.web.policies import is_researcher
from arena.web.services import Services
from training.adapters import DEFAULT_ADAPTERS_DIR, AdapterInfo, find_adapters, read_adapter

COLUMNS = ("name", "status", "base", "template", "steps", "train_loss", "eval_loss", "created", "data")


def adapter_table(infos: list[AdapterInfo], services: Services, lang: str) -> pd.DataFrame:
    """One row per adapter, with the arena models that already serve it."""
    rows = []
    for info in infos:
        row = info.summary()
        # summary() is the CLI's English text; the page says the state in its own language.
        row["status"] = t(lang, "adapters_status_ready" if info.complete else "adapters_status_unfinished")
        row["in_arena"] = ", ".join(hotload.models_using(services.registry, info.path))
        rows.append([row[c] for c in (*COLUMNS, "in_arena")])
    return pd.DataFrame(rows, columns=[t(lang, f"adapters_col_{c}") for c in (*COLUMNS, "in_arena")])


def load_error(lang: str, adapter: str, base: str, exc: Exception) -> str:
    """Why an adapter did not load, in the page's language; the technical text folded away below it."""
    text = str(exc)
    if "NoMatchingPeftModuleError" in text or "Target modules" in text:
        lead = t(lang, "adapters_err_mismatch", adapter=adapter, base=base)
    elif "already in the arena" in text:
        lead = t(lang, "adapters_err_exists", adapter=adapter, base=base)
    else:
        lead = t(lang, "adapters_err_failed", adapter=adapter, base=base)
    detail = html.escape(text)
    return f"⚠️ {lead}\n\n<details><summary>{t(lang, 'adapters_err_details')}</summary><code>{detail}</code></details>"


def build(app: gr.Blocks, services: Services, lang: str, adapters_dir: Path = DEFAULT_ADAPTERS_DIR) -> None:
    """Add the (hidden) Adapters tab to the current Tabs and wire its events."""
    with gr.Tab(t(lang, "tab_adapters"), id="adapters", visible=False) as tab:
        gr.Markdown(t(lang, "adapters_intro"))
        with gr.Row():
            # Folder and base models are filled in for researchers on load: initial values are public in
            # Gradio's /config, and where adapters live is not for annotators (arena.web.policies).
            directory = gr.Textbox("", label=t(lang, "adapters_dir"), scale=4, elem_id="adapters-dir")
            refresh = gr.Button(t(lang, "adapters_refresh"), scale=1, elem_id="adapters-refresh")
        table = gr.Dataframe(interactive=False, elem_id="adapters-table")
        with gr.Row():
            adapter = gr.Dropdown([], label=t(lang, "adapters_pick"), scale=3, elem_id="adapters-pick")
            base = gr.Dropdown([], label=t(lang, "adapters_base"), scale=2, elem_id="adapters-base")
            load = gr.Button(t(lang, "adapters_load"), variant="primary", scale=1, elem_id="adapters-load")
        status = gr.Markdown(elem_id="adapters-status")

    def allowed(request: gr.Request | None) -> bool:
        return is_researcher(services.store, getattr(request, "username", None))

    def listing(folder: str) -> dict[Any, Any]:
        infos = find_adapters(Path(folder or adapters_dir))
        choices = [(f"{i.name}" + ("" if i.complete else " (unfinished)"), str(i.path)) for i in infos if i.complete]
        return {
            table: adapter_table(infos, services, lang),
            adapter: gr.update(choices=choices, value=None),
            base: gr.update(choices=hotload.base_choices(services.registry)),
            status: "" if infos else t(lang, "adapters_none", dir=folder),
        }

    def show(folder: str, request: gr.Request) -> dict[Any, Any]:
        if not allowed(request):
            return {tab: gr.update(visible=False)}
        folder = folder or str(adapters_dir)
        return {tab: gr.update(visible=True), directory: folder, **listing(folder)}

    def refreshed(folder: str, request: gr.Request) -> dict[Any, Any]:
        return listing(folder) if allowed(request) else {status: t(lang, "researcher_only")}

    def picked(path: str | None) -> dict[Any, Any]:
        if not path:
            return {}
        guess = hotload.base_for(services.registry, read_adapter(path).base_model)
        return {base: gr.update(value=guess)} if guess else {}

    async def load_clicked(folder: str, path: str | None, base_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not allowed(request):
            return {status: t(lang, "researcher_only")}
        if not path or not base_name:
            return {status: t(lang, "adapters_choose")}
        try:
            added = await hotload.add_adapter(services.registry, base_name, path)
        except hotload.AdapterError as exc:
            return {status: load_error(lang, Path(path).name, base_name, exc)}
        return {**listing(folder), status: t(lang, "adapters_loaded", model=added)}

    outputs = [tab, directory, table, adapter, base, status]
    app.load(show, [directory], outputs, show_progress="hidden")
    refresh.click(refreshed, [directory], [table, adapter, base, status])
    directory.submit(refreshed, [directory], [table, adapter, base, status])
    adapter.input(picked, [adapter], [base])
    load.click(load_clicked, [directory, adapter, base], [table, adapter, base, status])
