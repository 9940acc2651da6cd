"""Replay tab: a scripted dialog turn by turn; 2–4 models answer each GT turn side by side; 1–5 ratings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from arena import rating
from arena.access import named_models
from arena.replay import ReplayStep, step, steps
from arena.sidebyside import stream_sides
from arena.store import stable_hash
from arena.ui import render
from arena.ui.i18n import t
from arena.ui.services import Services
from arena.ui.sides import build_sides, rating_inputs, reset_updates, split_rating_values


@dataclass
class ReplayState:
    """Per-browser-session state, kept server side in ``gr.State``."""

    dialog_id: str | None = None
    turn_index: int | None = None
    models: list[str] = field(default_factory=list)
    generation_ids: list[int | None] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    epoch: int = 0  # bumped by every new selection; a generation of an older epoch stops itself


def _step_label(s: ReplayStep, lang: str) -> str:
    return t(lang, "turn_label", n=s.turn_index) + ("" if s.gt is not None else f" ({t(lang, 'open_turn')})")


def build(app: gr.Blocks, services: Services, lang: str) -> None:
    """Render the replay tab inside ``app`` and wire its events."""
    sets = services.eval_sets()
    first_set = "selectstar_fashion" if "selectstar_fashion" in sets else (sets[0] if sets else None)
    state = gr.State(ReplayState())
    with gr.Row():
        eval_set = gr.Dropdown(sets, value=first_set, label=t(lang, "eval_set"), elem_id="replay-eval-set")
        dialog = gr.Dropdown([], label=t(lang, "dialog"), elem_id="replay-dialog")
        turn = gr.Dropdown([], label=t(lang, "turn"), elem_id="replay-turn")
    with gr.Row():
        # Empty until the page loads: the choices depend on who is logged in (arena.access), and a
        # component's initial value is public in Gradio's /config.
        models = gr.CheckboxGroup([], value=[], label=t(lang, "models_pick"), elem_id="replay-models")
        next_btn = gr.Button(t(lang, "next_unrated"), elem_id="replay-next", variant="secondary")
        stop_btn = gr.Button(t(lang, "stop"), elem_id="replay-stop", variant="stop")
    progress = gr.Markdown(elem_id="replay-progress")
    with gr.Accordion(t(lang, "system_prompt"), open=False, visible=False) as system_box:
        system_md = gr.Markdown(elem_id="replay-system")
    history = gr.HTML(elem_id="replay-history")
    views = build_sides(lang, "replay", with_gt=True, with_rating=True)
    with gr.Row():
        submit = gr.Button(t(lang, "submit"), variant="primary", elem_id="replay-submit")
    status = gr.Markdown(elem_id="replay-status")

    side_outputs = [c for v in views for c in (v.column, v.header, v.answer, v.gt, v.timing, *v.rating_components())]

    def _progress_text(annotator: str, set_name: str | None) -> str:
        if not set_name:
            return ""
        done, total = rating.progress(services.store, annotator, set_name, services.dialogs_of(set_name))
        return t(lang, "progress", done=done, total=total, set=set_name)

    def choose_set(set_name: str, request: gr.Request) -> dict[Any, Any]:
        dialogs = services.dialogs_of(set_name) if set_name else []
        choices = [(f"{d.id}" + (f" · {d.category}" if d.category else ""), d.id) for d in dialogs]
        return {dialog: gr.update(choices=choices, value=None), turn: gr.update(choices=[], value=None),
                progress: _progress_text(request.username, set_name)}

    def choose_dialog(dialog_id: str | None) -> dict[Any, Any]:
        d = services.by_id.get(dialog_id or "")
        if d is None:
            return {turn: gr.update(choices=[], value=None)}

        options = [(_step_label(s, lang), s.turn_index) for s in steps(d)]
        return {turn: gr.update(choices=options, value=options[0][1] if options else None)}

    def fill_models(request: gr.Request) -> dict[Any, Any]:
        """The models this account may use here (models added at run time included), two ticked."""
        names = named_models(services.registry, services.store, request.username)
        return {models: gr.update(choices=names, value=names[:2])}

    def show_step(dialog_id: str | None, turn_index: int | None, chosen: list[str], st: ReplayState,
                  allowed: list[str]) -> dict[Any, Any]:
        """Show the reference history up to the turn and clear the sides; generation follows."""
        d = services.by_id.get(dialog_id or "")
        out: dict[Any, Any] = {}
        if d is None or turn_index is None:
            st.dialog_id = None
            return {state: st, history: "", status: ""}
        s = step(d, int(turn_index))
        picked = [m for m in chosen if m in allowed][:4]  # a forged pick of a withheld model is dropped
        st.dialog_id, st.turn_index, st.models = d.id, s.turn_index, picked
        st.epoch += 1
        st.generation_ids, st.failed = [None] * len(picked), [False] * len(picked)
        out.update(reset_updates(views, picked, lang))
        out[state] = st
        out[history] = render.dialog_html(s.messages, lang)
        out[system_box] = gr.update(visible=bool(d.system))
        out[system_md] = d.system or ""
        out[status] = t(lang, "pick_models") if len(picked) < 2 else ""
        return out

    async def show_and_generate(request: gr.Request, dialog_id: str | None, turn_index: int | None,
                                chosen: list[str], st: ReplayState):
        """Show the step, then stream every chosen model's answer at once; store each when done.
        One handler, so a newer selection can never interleave with an older one's updates."""
        yield show_step(dialog_id, turn_index, chosen, st,
                        named_models(services.registry, services.store, request.username))
        async for update in generate(st, request):
            yield update

    async def generate(st: ReplayState, request: gr.Request):
        """Stream every chosen model's answer at once; store each with its GT metrics when done."""
        d = services.by_id.get(st.dialog_id or "")
        if d is None or st.turn_index is None or len(st.models) < 2:
            return
        s = step(d, st.turn_index)
        epoch = st.epoch
        backends = [(m, services.registry[m]) for m in st.models]
        gt_calls = [c.model_dump() for c in (s.gt.tool_calls or [])] if s.gt is not None else []
        final = None
        async for sides in stream_sides(backends, s.messages, tools=s.tools, stall_timeout=services.stall_timeout):
            if st.epoch != epoch:
                return  # the annotator moved on (rapid clicks): leaving the loop cancels these streams
            final = sides
            yield {views[i].answer: (render.error_html(x.error, lang) if x.error else
                                     render.answer_html(x.text, x.tool_calls, lang, streaming=not x.done))
                   for i, x in enumerate(sides)}
        if final is None or st.epoch != epoch:
            return
        out: dict[Any, Any] = {}
        prompt_hash = stable_hash({"messages": s.messages, "tools": s.tools})
        context = rating.replay_context(request.username or "anonymous")
        for i, side in enumerate(final):
            # Kiwi morphemes for the GT diff take tens of ms: off the event loop, so other pages keep streaming.
            metrics = await asyncio.to_thread(rating.metrics_for, d, s, side, services.splitter)
            gen_id = await asyncio.to_thread(rating.record_side, services.store, services.model_id(side.model), d, s,
                                             side, context, metrics, prompt_hash)
            st.generation_ids[i], st.failed[i] = gen_id, bool(side.error)
            view = views[i]
            ok = not side.error
            out[view.gt] = render.gt_html(s.gt.content if s.gt else None, gt_calls, metrics, lang)
            if side.finish is not None:
                tm, usage = side.finish.timings, side.finish.usage
                out[view.timing] = render.timings_line(tm.ttft_s, tm.tokens_per_s, usage.completion_tokens, lang)
            out[view.score] = gr.update(interactive=ok)
            out[view.criteria] = gr.update(interactive=ok)
            out[view.comment] = gr.update(interactive=ok)
        out[state] = st
        yield out

    def submit_ratings(request: gr.Request, st: ReplayState, *values: Any) -> dict[Any, Any]:
        """Save every side's rating in one transaction, then move to the next unrated turn.
        Refusals raise gr.Error, which stops the chain, so the annotator's half-filled form stays."""
        annotator = request.username
        if not annotator:
            raise gr.Error(t(lang, "login_required"), title=t(lang, "toast_error"))
        if st.dialog_id is None or not st.generation_ids or any(g is None for g in st.generation_ids):
            raise gr.Error(t(lang, "nothing_to_rate"), title=t(lang, "toast_error"))
        items, missing = [], []
        for i, (score, criteria, comment) in enumerate(split_rating_values(list(values))[: len(st.models)]):
            if st.failed[i]:
                continue  # failed sides are excluded from rating
            if score is None:
                missing.append(chr(ord("A") + i))
                continue
            items.append((st.generation_ids[i], int(score), list(criteria), comment))
        if missing:
            raise gr.Error(t(lang, "score_required", sides=", ".join(missing)), title=t(lang, "toast_error"))
        if not items:
            raise gr.Error(t(lang, "nothing_to_rate"), title=t(lang, "toast_error"))
        services.store.save_ratings(annotator, items)
        d = services.by_id[st.dialog_id]
        nxt = rating.next_unrated(services.store, annotator, d.eval_set, services.dialogs_of(d.eval_set),
                                  after=(st.dialog_id, st.turn_index))
        out: dict[Any, Any] = {status: t(lang, "saved", n=len(items)),
                               progress: _progress_text(annotator, d.eval_set)}
        out.update(_select(nxt) if nxt else {status: t(lang, "all_rated"), dialog: gr.update(value=None)})
        return out

    def _select(s: ReplayStep) -> dict[Any, Any]:
        d = services.by_id[s.dialog_id]

        options = [(_step_label(x, lang), x.turn_index) for x in steps(d)]
        return {dialog: gr.update(value=d.id), turn: gr.update(choices=options, value=s.turn_index)}

    def go_next(set_name: str, st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        if not set_name:
            return {}
        after = (st.dialog_id, st.turn_index) if st.dialog_id else None
        nxt = rating.next_unrated(services.store, request.username, set_name, services.dialogs_of(set_name), after=after)
        if nxt is None:  # clearing the dialog makes the step that follows show nothing
            return {status: t(lang, "all_rated"), dialog: gr.update(value=None)}
        return _select(nxt)

    step_inputs = [dialog, turn, models, state]
    outputs = [state, history, system_box, system_md, status, *side_outputs]

    def chain(event: Any) -> Any:
        """After the selection changed: show the step and stream the answers (cancellable by stop)."""
        return event.success(show_and_generate, step_inputs, outputs, show_progress="hidden")

    # always_last: clicks during a generation collapse into one new generation after it.
    quiet = {"show_progress": "hidden", "trigger_mode": "always_last"}
    eval_set.input(choose_set, [eval_set], [dialog, turn, progress])
    streams = [
        chain(dialog.input(choose_dialog, [dialog], [turn], **quiet)),
        turn.input(show_and_generate, step_inputs, outputs, **quiet),
        models.input(show_and_generate, step_inputs, outputs, **quiet),
        chain(next_btn.click(go_next, [eval_set, state], [dialog, turn, status], **quiet)),
        chain(submit.click(submit_ratings, [state, *rating_inputs(views)], [dialog, turn, status, progress], **quiet)),
        # The first page view opens the first unrated turn of the default set.
        chain(app.load(fill_models, None, [models], show_progress="hidden")
              .then(choose_set, [eval_set], [dialog, turn, progress])
              .then(go_next, [eval_set, state], [dialog, turn, status])),
    ]
    stop_btn.click(None, None, None, cancels=streams)
