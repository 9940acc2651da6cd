"""Rounds tab (researchers): create, start, pre-generate, follow and export blind A/B rounds.

The tab is hidden until the load handler has seen a researcher, and every handler checks the
logged-in account's role on the server (from ``request.username``, never from anything the browser
sends); for anyone else it returns nothing but a notice. The choices (rounds, models, annotators)
are filled in by the load handler for researchers only, so the page itself carries none of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from pydantic import ValidationError

from arena import rounds
from arena.core.errors import validation_problems
from arena.core.i18n import t
from arena.rounds import export, pregen
from arena.store import AlreadyExists, StoreError
from arena.web.policies import is_researcher
from arena.web.services import Services
from arena.web.ui.messages import error_text


def form_problems(
    lang: str,
    name: str | None,
    sets: list[str] | None,
    models: list[str] | None,
    people: list[str] | None,
    pairing: str,
    pairs_per_turn: float | None,
    weights: str | None,
) -> list[str]:
    """Everything wrong with the new-round form, in the page's language, all at once (empty when fine)."""
    problems = []
    if not (name or "").strip():
        problems.append(t(lang, "round_err_name"))
    if not sets:
        problems.append(t(lang, "round_err_eval_sets"))
    if len(models or []) < 2:
        problems.append(t(lang, "round_err_models"))
    if not people:
        problems.append(t(lang, "round_err_annotators"))
    if pairing == "sampled":
        n_pairs = len(models or []) * (len(models or []) - 1) // 2
        if len(models or []) >= 2 and int(pairs_per_turn or 1) > n_pairs:
            problems.append(t(lang, "round_err_pairs", n=int(pairs_per_turn or 1), max=n_pairs))
        try:
            parsed = rounds.parse_weights(weights or "")
        except rounds.RoundError:
            problems.append(t(lang, "round_err_weights"))
        else:
            if unknown := sorted(set(parsed) - set(models or [])):
                problems.append(t(lang, "round_err_weight_models", models=", ".join(unknown)))
            if any(w <= 0 for w in parsed.values()):
                problems.append(t(lang, "round_err_weight_positive"))
    return problems


def create_error(lang: str, name: str | None, exc: Exception) -> str:
    """The store's refusal of a new round, in the page's language where the form can cause it."""
    if isinstance(exc, AlreadyExists):
        return t(lang, "round_err_exists", name=(name or "").strip())
    if "reveals model" in str(exc):
        return t(lang, "round_err_reveals", name=(name or "").strip())
    if "select no turns" in str(exc):
        return t(lang, "round_err_no_turns")
    return error_text(lang, exc).removeprefix("⚠️ ")


def stopping_text(lang: str, st: rounds.RoundStatus) -> str:
    """The stopping rule in a sentence: what is settled, and how the round samples its pairs."""
    sampling = t(lang, f"round_sampling_{st.sampling}")
    if st.ranking.empty:
        return t(lang, "round_stop_none", sampling=sampling)
    n = len(st.ranking)
    key = "round_stop_all" if st.settled >= n else "round_stop_top" if st.settled else "round_stop_open"
    return t(lang, key, n=n, k=st.settled, sampling=sampling, n_boot=st.n_boot)


def separation_table(lang: str, st: rounds.RoundStatus) -> pd.DataFrame | None:
    """One row per adjacent pair of the current ranking: gap, separated or not, votes still needed."""
    if st.adjacent.empty:
        return None
    rows = []
    for r in st.adjacent.itertuples(index=False):
        if r.separated:
            needed = t(lang, "round_sep_done")
        elif pd.isna(r.votes_needed):
            needed = t(lang, "round_sep_unknown")
        else:
            needed = t(lang, "round_sep_more", n=int(r.votes_needed))
        rows.append([r.upper, r.lower, f"{r.gap:.1f}", t(lang, "yes" if r.separated else "no"), needed])
    columns = [t(lang, k) for k in ("col_upper", "col_lower", "col_gap", "col_separated", "col_votes_needed")]
    return pd.DataFrame(rows, columns=columns)


def build(app: gr.Blocks, services: Services, lang: str) -> None:
    """Add the (hidden) rounds tab to the current Tabs and wire its events."""
    with gr.Tab(t(lang, "tab_rounds"), id="rounds", visible=False, elem_id="rounds-tab") as panel:
        with gr.Row():
            pick = gr.Dropdown([], label=t(lang, "rounds_pick"), elem_id="rounds-pick", scale=3)
            refresh = gr.Button(t(lang, "rounds_refresh"), elem_id="rounds-refresh", scale=1)
        summary = gr.Markdown(elem_id="rounds-summary")
        with gr.Row():
            per_annotator = gr.Dataframe(interactive=False, elem_id="rounds-per-annotator")
            per_pair = gr.Dataframe(interactive=False, elem_id="rounds-per-pair")
        stopping = gr.Markdown(elem_id="rounds-stopping")
        separation = gr.Dataframe(interactive=False, wrap=True, elem_id="rounds-separation")
        # Enabled by _status for the selected round's state only (rounds.ROUND_ACTIONS).
        with gr.Row():
            start_btn = gr.Button(t(lang, "rounds_start"), elem_id="rounds-start", interactive=False)
            pregen_btn = gr.Button(
                t(lang, "rounds_pregen"), elem_id="rounds-pregen", variant="primary", interactive=False
            )
            close_btn = gr.Button(t(lang, "rounds_close"), elem_id="rounds-close", variant="stop", interactive=False)
            reopen_btn = gr.Button(t(lang, "rounds_reopen"), elem_id="rounds-reopen", interactive=False)
        # Closing stops every annotator's judging at once: it takes a second, deliberate click.
        with gr.Row(visible=False, elem_id="rounds-close-confirm") as confirm_row:
            confirm_text = gr.Markdown(elem_id="rounds-close-question")
            confirm_btn = gr.Button(t(lang, "rounds_close_confirm"), variant="stop", elem_id="rounds-close-yes")
            cancel_btn = gr.Button(t(lang, "rounds_close_cancel"), elem_id="rounds-close-no")
        with gr.Row():
            csv_btn = gr.Button(t(lang, "rounds_export_csv"), elem_id="rounds-export-csv")
            jsonl_btn = gr.Button(t(lang, "rounds_export_jsonl"), elem_id="rounds-export-jsonl")
        exported = gr.File(label=t(lang, "rounds_export_file"), visible=False, elem_id="rounds-export-file")
        message = gr.Markdown(elem_id="rounds-message")
        with gr.Accordion(t(lang, "rounds_new"), open=False):
            name = gr.Textbox(label=t(lang, "round_name"), elem_id="round-name")
            eval_sets = gr.CheckboxGroup([], label=t(lang, "eval_sets"), elem_id="round-eval-sets")
            with gr.Row():
                dialogs = gr.Textbox(label=t(lang, "round_dialogs"), elem_id="round-dialogs")
                categories = gr.Textbox(label=t(lang, "round_categories"), elem_id="round-categories")
            models = gr.CheckboxGroup([], label=t(lang, "round_models"), elem_id="round-models")
            with gr.Row():
                pairing = gr.Radio(
                    [(t(lang, "round_pairing_all"), "all"), (t(lang, "round_pairing_sampled"), "sampled")],
                    value="all",
                    label=t(lang, "round_pairing"),
                    elem_id="round-pairing",
                )
                pairs_per_turn = gr.Number(
                    1, precision=0, minimum=1, label=t(lang, "round_pairs_per_turn"), elem_id="round-pairs-per-turn"
                )
                weights = gr.Textbox(label=t(lang, "round_weights"), elem_id="round-weights")
            with gr.Row():
                judgements = gr.Number(
                    1, precision=0, minimum=1, label=t(lang, "round_judgements"), elem_id="round-judgements"
                )
                sampling = gr.Radio(
                    [(t(lang, "round_sampling_uniform"), "uniform"), (t(lang, "round_sampling_active"), "active")],
                    value="uniform",
                    label=t(lang, "round_sampling"),
                    info=t(lang, "round_sampling_info"),
                    elem_id="round-sampling",
                )
                seed = gr.Number(0, precision=0, label=t(lang, "round_seed"), elem_id="round-seed")
                max_tokens = gr.Number(
                    0, precision=0, minimum=0, label=t(lang, "round_max_tokens"), elem_id="round-max-tokens"
                )
            annotators = gr.CheckboxGroup([], label=t(lang, "round_annotators"), elem_id="round-annotators")
            create_btn = gr.Button(t(lang, "round_create"), variant="primary", elem_id="round-create")

    def researcher(request: gr.Request) -> bool:
        return is_researcher(services.store, request.username)

    denied = {message: t(lang, "rounds_researchers_only")}
    buttons = {"start": start_btn, "pregen": pregen_btn, "close": close_btn, "reopen": reopen_btn}
    status_outputs = [summary, per_annotator, per_pair, stopping, separation, *buttons.values(), confirm_row]

    def _buttons(status: str | None) -> dict[Any, Any]:
        allowed = rounds.allowed_actions(status)
        return {
            **{b: gr.update(interactive=action in allowed) for action, b in buttons.items()},
            confirm_row: gr.update(visible=False),
        }

    def _status(round_name: str | None) -> dict[Any, Any]:
        if not round_name:
            return {
                summary: "",
                per_annotator: None,
                per_pair: None,
                stopping: "",
                separation: None,
                **_buttons(None),
            }
        st = rounds.round_status(services.store, round_name)
        by_annotator = pd.DataFrame(
            [[n, c["votes"], c["skips"]] for n, c in st.per_annotator.items()],
            columns=[t(lang, k) for k in ("col_annotator", "col_votes", "col_skips")],
        )
        by_pair = pd.DataFrame(
            [[a, b, c["items"], c["votes"]] for (a, b), c in st.per_pair.items()],
            columns=[t(lang, k) for k in ("col_model_a", "col_model_b", "col_items", "col_votes")],
        )
        text = t(
            lang,
            "round_summary",
            name=st.name,
            status=t(lang, f"round_status_{st.status}"),
            done=st.items_done,
            total=st.items,
            ready=st.items_ready,
            failed=st.items_failed,
            stored=st.answers_stored,
            needed=st.answers_needed,
            votes=st.votes,
            skips=st.skips,
        )
        return {
            summary: text,
            per_annotator: by_annotator,
            per_pair: by_pair,
            stopping: stopping_text(lang, st),
            separation: separation_table(lang, st),
            **_buttons(st.status),
        }

    def _round_choices(value: str | None = None) -> dict[Any, Any]:
        names = [r.name for r in services.store.list_rounds()]
        return {pick: gr.update(choices=names, value=value if value in names else (names[-1] if names else None))}

    def load(request: gr.Request, current: str | None = None) -> dict[Any, Any]:
        if not researcher(request):
            return {panel: gr.update(visible=False)}  # (an empty dict would read as one output value)
        out = {
            panel: gr.update(visible=True),
            eval_sets: gr.update(choices=services.eval_sets()),
            models: gr.update(choices=services.registry.names()),
            annotators: gr.update(choices=[a.name for a in services.store.list_annotators()]),
        }
        out.update(_round_choices(current))
        return out

    def reload(current: str | None, request: gr.Request) -> dict[Any, Any]:
        return load(request, current)

    def show(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        try:
            return {**_status(round_name), message: ""}
        except StoreError as exc:
            return {message: error_text(lang, exc)}

    def create(
        request: gr.Request,
        round_name: str,
        sets: list[str],
        dialog_text: str,
        category_text: str,
        chosen: list[str],
        pairing_value: str,
        n_pairs: float | None,
        weight_text: str,
        n_judgements: float,
        seed_value: float,
        tokens: float | None,
        people: list[str],
        sampling_value: str = "uniform",
    ) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        if problems := form_problems(lang, round_name, sets, chosen, people, pairing_value, n_pairs, weight_text):
            return {message: "⚠️ " + " · ".join(problems)}
        try:
            fields: dict[str, Any] = {
                "eval_sets": sets or [],
                "dialogs": rounds.split_list(dialog_text or ""),
                "categories": rounds.split_list(category_text or ""),
                "models": chosen or [],
                "pairing": pairing_value,
                "judgements": int(n_judgements or 1),
                "sampling": sampling_value or "uniform",
                "annotators": people or [],
                "seed": int(seed_value or 0),
                "options": {"max_tokens": int(tokens)} if tokens else {},
            }
            if pairing_value == "sampled":
                fields["pairs_per_turn"] = int(n_pairs or 1)
                fields["weights"] = rounds.parse_weights(weight_text or "")
            config = rounds.RoundConfig.model_validate(fields)
            rounds.create_round(
                services.store, round_name or "", config, dialogs=services.dialogs, registry=services.registry
            )
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc, "round"))
            return {message: f"⚠️ {problems}"}
        except (StoreError, ValueError) as exc:
            return {message: "⚠️ " + create_error(lang, round_name, exc)}
        n = rounds.count_items(config, services.dialogs)
        return {
            **_round_choices(round_name.strip()),
            **_status(round_name.strip()),
            message: t(lang, "round_created", name=round_name.strip(), items=n),
        }

    def start(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        try:
            n = rounds.start_round(services.store, round_name or "", dialogs=services.dialogs)
            return {**_status(round_name), message: t(lang, "round_started", name=round_name, items=n)}
        except StoreError as exc:
            # The buttons follow the state the round is really in (another researcher may have moved it).
            found = services.store.get_round(round_name or "")
            return {**(_status(round_name) if found else {}), message: error_text(lang, exc)}

    def ask_close(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        if not round_name:
            return {message: ""}
        return {
            confirm_row: gr.update(visible=True),
            confirm_text: t(lang, "rounds_close_question", name=round_name),
            message: "",
        }

    def close(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        try:
            rounds.close_round(services.store, round_name or "")
            return {**_status(round_name), message: t(lang, "round_closed", name=round_name)}
        except StoreError as exc:
            return {**_status(round_name), message: error_text(lang, exc)}

    def reopen(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        try:
            status = rounds.reopen_round(services.store, round_name or "")
            return {
                **_status(round_name),
                message: t(lang, "round_reopened", name=round_name, status=t(lang, f"round_status_{status}")),
            }
        except StoreError as exc:
            return {**_status(round_name), message: error_text(lang, exc)}

    async def run_pregen(round_name: str | None, request: gr.Request, progress=gr.Progress()) -> dict[Any, Any]:
        if not researcher(request):
            return denied
        try:
            report = await pregen.run(
                services.store,
                round_name or "",
                services.registry,
                services.dialogs,
                on_progress=lambda done, total: progress(
                    (done, total), desc=t(lang, "round_pregen_progress"), unit=t(lang, "round_pregen_unit")
                ),
                splitter=services.splitter,
            )
        except StoreError as exc:
            return {message: error_text(lang, exc)}
        return {
            **_status(round_name),
            message: t(
                lang,
                "round_pregen_done",
                total=report.total,
                skipped=report.skipped,
                generated=report.generated,
                failed=report.failed,
            ),
        }

    def do_export(fmt: str):
        def handler(round_name: str | None, request: gr.Request) -> dict[Any, Any]:
            if not researcher(request):
                return denied
            if not round_name:
                return {message: ""}
            # A fresh directory per download: two researchers exporting at once never share a file.
            path = Path(tempfile.mkdtemp(prefix="arena-export-")) / export.default_filename(round_name, fmt)
            try:
                n = export.export_round(services.store, round_name, fmt, path)
            except StoreError as exc:
                return {message: error_text(lang, exc)}
            return {
                exported: gr.update(value=str(path), visible=True),
                message: t(lang, "rounds_exported", n=n, file=path.name),
            }

        return handler

    app.load(load, None, [panel, eval_sets, models, annotators, pick], api_name="rounds_load").then(
        show, [pick], [*status_outputs, message], show_progress="hidden"
    )
    pick.input(show, [pick], [*status_outputs, message], api_name="rounds_status")
    refresh.click(reload, [pick], [panel, eval_sets, models, annotators, pick], api_name="rounds_refresh").then(
        show, [pick], [*status_outputs, message], show_progress="hidden"
    )
    create_btn.click(
        create,
        [
            name,
            eval_sets,
            dialogs,
            categories,
            models,
            pairing,
            pairs_per_turn,
            weights,
            judgements,
            seed,
            max_tokens,
            annotators,
            sampling,
        ],
        [pick, *status_outputs, message],
        api_name="rounds_create",
    )
    start_btn.click(start, [pick], [*status_outputs, message], api_name="rounds_start")
    close_btn.click(ask_close, [pick], [confirm_row, confirm_text, message], api_name="rounds_close_ask")
    confirm_btn.click(close, [pick], [*status_outputs, message], api_name="rounds_close")
    cancel_btn.click(lambda: gr.update(visible=False), None, [confirm_row], show_progress="hidden")
    reopen_btn.click(reopen, [pick], [*status_outputs, message], api_name="rounds_reopen")
    pregen_btn.click(run_pregen, [pick], [*status_outputs, message], api_name="rounds_pregen", trigger_mode="once")
    csv_btn.click(do_export("csv"), [pick], [exported, message], api_name="rounds_export_csv")
    jsonl_btn.click(do_export("jsonl"), [pick], [exported, message], api_name="rounds_export_jsonl")
