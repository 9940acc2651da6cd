"""Replay tab: a scripted dialog turn by turn; 2–4 models answer each GT turn side by side; 1–5 ratings.

A turn this annotator already rated opens with the stored answers and their rating filled in, for an
explicit edit; nothing regenerates over it unless they press "regenerate". A dropdown that is opened
and left without a new choice changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from arena.annotation import answers, rating
from arena.annotation.sidebyside import stream_sides
from arena.core.answers import Context
from arena.core.dialogs import Dialog
from arena.core.i18n import t
from arena.core.replay import ReplayStep, step, steps
from arena.web.policies import named_models
from arena.web.services import Services
from arena.web.ui import render
from arena.web.ui.sides import MAX_SIDES, build_sides, checked_rating, rating_inputs, reset_updates, split_rating_values


@dataclass
class ReplayState:
    """Per-browser-session state, kept server side in ``gr.State``: the turn on screen and its sides."""

    eval_set: str | None = None
    dialog_id: str | None = None
    turn_index: int | None = None
    models: list[str] = field(default_factory=list)
    generation_ids: list[int | None] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    editing: bool = False  # the sides are this annotator's stored, rated answers: a submit edits that rating
    epoch: int = 0  # bumped by every new selection; a generation of an older epoch stops itself
    pending: bool = False  # the step just opened needs new answers: the answering event that follows streams them


def _step_label(n: int, s: ReplayStep, rated: bool, lang: str) -> str:
    label = t(lang, "turn_label", n=n) + ("" if s.gt is not None else f" ({t(lang, 'open_turn')})")
    return label + (f" {t(lang, 'turn_rated_mark')}" if rated else "")


def _turn_number(d: Dialog, turn_index: int) -> int:
    return next((n for n, s in enumerate(steps(d), start=1) if s.turn_index == turn_index), 0)


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
        # Empty until the page loads: the choices depend on who is logged in (arena.web.policies), and a
        # component's initial value is public in Gradio's /config.
        models = gr.CheckboxGroup([], value=[], label=t(lang, "models_pick"), elem_id="replay-models")
        next_btn = gr.Button(t(lang, "next_unrated"), elem_id="replay-next", variant="secondary")
        regen_btn = gr.Button(t(lang, "regenerate"), elem_id="replay-regenerate", variant="secondary")
        stop_btn = gr.Button(t(lang, "stop"), elem_id="replay-stop", variant="stop")
    progress = gr.Markdown(elem_id="replay-progress")
    with gr.Accordion(t(lang, "system_prompt"), open=False, visible=False) as system_box:
        system_md = gr.Markdown(elem_id="replay-system")
    history = gr.HTML(elem_id="replay-history")
    views = build_sides(lang, "replay", with_gt=True, with_rating=True)
    # Sticky at the bottom of the window (CSS in app.py): long answers never push the button out of reach,
    # and the confirmation of the last save stays beside it while the next turn loads.
    with gr.Row(elem_id="replay-submit-bar", equal_height=False):
        submit = gr.Button(
            t(lang, "submit"), variant="primary", elem_id="replay-submit", interactive=False, scale=0, min_width=240
        )
        with gr.Column(scale=1):
            saved = gr.Markdown(elem_id="replay-saved")
            status = gr.Markdown(elem_id="replay-status")

    side_outputs = [c for v in views for c in (v.column, v.header, v.answer, v.gt, v.timing, *v.rating_components())]
    outputs = [
        state,
        history,
        system_box,
        system_md,
        status,
        saved,
        submit,
        dialog,
        turn,
        progress,
        models,
        *side_outputs,
    ]

    def _annotator(request: gr.Request) -> str:
        return request.username or "anonymous"

    def _allowed(request: gr.Request) -> list[str]:
        return named_models(services.registry, services.store, request.username)

    def _progress_text(annotator: str, set_name: str | None) -> str:
        if not set_name:
            return ""
        done, total = rating.progress(services.store, annotator, set_name, services.dialogs_of(set_name))
        return t(lang, "progress", done=done, total=total, set=set_name)

    def _dialog_choices(set_name: str, rated: set[tuple[str, int]]) -> list[tuple[str, str]]:
        out = []
        for d in services.dialogs_of(set_name):
            done = all((s.dialog_id, s.turn_index) in rated for s in steps(d))
            label = (
                d.id + (f" · {d.category}" if d.category else "") + (f" {t(lang, 'turn_rated_mark')}" if done else "")
            )
            out.append((label, d.id))
        return out

    def _turn_choices(d: Dialog, rated: set[tuple[str, int]]) -> list[tuple[str, int]]:
        return [(_step_label(n, s, done, lang), s.turn_index) for n, s, done in rating.numbered_steps(d, rated)]

    def _open(
        d: Dialog, s: ReplayStep, st: ReplayState, request: gr.Request, chosen: list[str], fresh: bool, note: str
    ) -> tuple[dict[Any, Any], bool]:
        """Updates that put step ``s`` on screen, and whether its answers must be generated now.

        A step this annotator rated shows the stored answers and the rating (unless ``fresh``), so a
        submit edits what they saw; otherwise the sides are cleared for the picked models to answer.
        Runs in a worker thread: store reads and the GT diff of stored answers stay off the event loop.
        """
        annotator, allowed = _annotator(request), _allowed(request)
        stored = (
            []
            if fresh
            else [a for a in rating.rated_answers(services.store, annotator, d, s) if a.model in allowed][:MAX_SIDES]
        )
        picked = [a.model for a in stored] or [m for m in chosen if m in allowed][:MAX_SIDES]
        st.eval_set, st.dialog_id, st.turn_index, st.models = d.eval_set, d.id, s.turn_index, picked
        st.epoch += 1
        st.editing = bool(stored)
        st.generation_ids = [a.generation_id for a in stored] or [None] * len(picked)
        st.failed = [False] * len(picked)
        rated = rating.rated_set(services.store, annotator, d.eval_set)
        out: dict[Any, Any] = reset_updates(views, picked, lang)
        # data-step changes with every opened step: the keyboard script puts the highlight back on side A.
        out[history] = f'<div data-step="{s.key}:{st.epoch}">' + render.dialog_html(s.messages, lang) + "</div>"
        out[system_box] = gr.update(visible=bool(d.system))
        out[system_md] = d.system or ""
        out[dialog] = gr.update(choices=_dialog_choices(d.eval_set, rated), value=d.id)
        out[turn] = gr.update(choices=_turn_choices(d, rated), value=s.turn_index)
        out[progress] = _progress_text(annotator, d.eval_set)
        if not stored:
            out[submit] = gr.update(value=t(lang, "submit"), interactive=False)  # enabled once the answers are in
            out[status] = t(lang, "pick_models") if len(picked) < 2 else note
            return out, len(picked) >= 2
        gt_calls = s.gt.calls() if s.gt is not None else []
        for view, a in zip(views, stored):
            calls = rating.answer_calls(a.tool_calls)
            metrics = rating.stored_metrics(d, s, a.text, a.tool_calls, services.splitter)
            out[view.answer] = render.answer_html(a.text, calls, lang)
            out[view.gt] = render.gt_html(s.gt.content if s.gt else None, gt_calls, metrics, lang)
            out[view.timing] = render.timings_line(
                a.ttft_ms / 1000 if a.ttft_ms is not None else None, a.tokens_per_s, a.tokens, lang
            )
            out[view.score] = gr.update(value=a.score, interactive=True)
            out[view.criteria] = gr.update(value=list(a.criteria), interactive=True)
            out[view.comment] = gr.update(value=a.comment, interactive=True)
        out[models] = gr.update(value=picked)
        out[submit] = gr.update(value=t(lang, "submit_edit"), interactive=True)
        when = max(a.rated_at for a in stored).strftime("%Y-%m-%d %H:%M UTC")
        out[status] = note or t(lang, "editing_note", when=when)
        return out, False

    async def _show(
        d: Dialog,
        s: ReplayStep,
        st: ReplayState,
        request: gr.Request,
        chosen: list[str],
        *,
        fresh: bool = False,
        note: str = "",
        extra: dict[Any, Any] | None = None,
    ) -> dict[Any, Any]:
        """Put a step on screen; when it needs new answers, ``stream_answers`` (the event that follows) streams them."""
        out, st.pending = await asyncio.to_thread(_open, d, s, st, request, chosen, fresh, note)
        out.update(extra or {})
        out[state] = st
        return out

    async def stream_answers(st: ReplayState, request: gr.Request):
        """Stream the answers of the step just opened, then enable submit.

        A separate event from the one that opens the step, with no dropdown among its outputs: dropdowns
        given new choices and value in the first message of a streaming event now and then kept neither
        in Gradio 6.31's page (7 of 40 reloads of /en/ here showed an empty dialog and turn, and a submit
        then named no turn); set by a plain event, 0 of 40 (``benchmarks/replay_reloads.py``).
        """
        if not st.pending:
            yield {state: st}
            return
        st.pending = False
        epoch = st.epoch
        # Each update is held back by one, so that the last one also enables submit: a further update
        # after the last one, carrying only the button, left the score radios disabled in the browser.
        last = None
        async for update in generate(st, request):
            if last is not None:
                yield last
            last = update
        if last is not None and st.epoch == epoch:  # else another step is on screen: its own answers go there
            if any(g is not None for g in st.generation_ids):
                last[submit] = gr.update(interactive=True)
            yield last

    def _first_of_set(set_name: str, annotator: str) -> tuple[ReplayStep | None, str]:
        """The set's first unrated step; its very first step (shown for editing) when all are rated."""
        dialogs = services.dialogs_of(set_name)
        nxt = rating.next_unrated(services.store, annotator, set_name, dialogs)
        if nxt is not None:
            return nxt, ""
        first = rating.all_steps(dialogs)
        return (first[0], t(lang, "all_rated")) if first else (None, "")

    def fill_models(request: gr.Request) -> dict[Any, Any]:
        """The models this account may use here (models added at run time included), two ticked."""
        names = named_models(services.registry, services.store, request.username)
        return {models: gr.update(choices=names, value=names[:2])}

    async def on_start(set_name: str | None, chosen: list[str], st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        """The first page view opens the first unrated turn of the default set."""
        s, note = _first_of_set(set_name, _annotator(request)) if set_name else (None, "")
        if s is None:
            return {state: st}
        return await _show(services.by_id[s.dialog_id], s, st, request, chosen, note=note)

    async def on_set(set_name: str | None, chosen: list[str], st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        """A newly chosen eval set opens its first unrated turn; leaving the dropdown unchanged does nothing."""
        if set_name == st.eval_set:
            # Opened and left (click outside, Escape) without a new choice. One key, not {}: Gradio takes an
            # empty dict for a missing value, not for "no updates".
            return {state: st}
        s, note = _first_of_set(set_name, _annotator(request)) if set_name in sets else (None, "")
        if s is None:
            return {eval_set: gr.update(value=st.eval_set)}
        return await _show(services.by_id[s.dialog_id], s, st, request, chosen, note=note)

    async def on_dialog(
        dialog_id: str | None, chosen: list[str], st: ReplayState, request: gr.Request
    ) -> dict[Any, Any]:
        """A newly chosen dialog opens its first unrated turn (its first turn when all are rated)."""
        d = services.by_id.get(dialog_id or "")
        if d is not None and d.id == st.dialog_id:
            return {state: st}
        s = rating.first_unrated_in(d, rating.rated_set(services.store, _annotator(request), d.eval_set)) if d else None
        if d is None or s is None or d.eval_set != st.eval_set:
            return {dialog: gr.update(value=st.dialog_id)}
        return await _show(d, s, st, request, chosen)

    async def on_turn(
        turn_index: int | None, chosen: list[str], st: ReplayState, request: gr.Request
    ) -> dict[Any, Any]:
        """A newly chosen turn of the dialog on screen opens (rated: with its stored rating)."""
        d = services.by_id.get(st.dialog_id or "")
        if d is None or turn_index == st.turn_index:
            return {state: st}
        if turn_index not in {x.turn_index for x in steps(d)}:
            return {turn: gr.update(value=st.turn_index)}
        return await _show(d, step(d, int(turn_index)), st, request, chosen)

    async def on_models(chosen: list[str], st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        """New models answer the turn on screen; a rated turn keeps its rated answers (regenerate is explicit)."""
        d = services.by_id.get(st.dialog_id or "")
        if d is None or st.turn_index is None:
            return {state: st}
        if st.editing:
            return {status: t(lang, "rated_models_kept")}
        return await _show(d, step(d, st.turn_index), st, request, chosen, fresh=True)

    async def on_regenerate(chosen: list[str], st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        """New answers from the picked models for the turn on screen, and an empty form; earlier answers
        and ratings stay stored (a rated answer is never rewritten: the new one is its next revision)."""
        d = services.by_id.get(st.dialog_id or "")
        if d is None or st.turn_index is None:
            return {state: st}
        rated = (d.id, st.turn_index) in rating.rated_set(services.store, _annotator(request), d.eval_set)
        note = t(lang, "regenerated_note") if rated else ""
        return await _show(d, step(d, st.turn_index), st, request, chosen, fresh=True, note=note)

    async def on_next(chosen: list[str], st: ReplayState, request: gr.Request) -> dict[Any, Any]:
        """The next unrated turn of the set on screen; when there is none the screen stays as it is."""
        if st.eval_set is None:
            return {state: st}
        after = (st.dialog_id, st.turn_index) if st.dialog_id else None
        nxt = rating.next_unrated(
            services.store, _annotator(request), st.eval_set, services.dialogs_of(st.eval_set), after=after
        )
        if nxt is None:
            return {status: t(lang, "all_rated")}
        return await _show(services.by_id[nxt.dialog_id], nxt, st, request, chosen)

    async def generate(st: ReplayState, request: gr.Request):
        """Stream every chosen model's answer at once; store each with its GT metrics when done."""
        d = services.by_id.get(st.dialog_id or "")
        if d is None or st.turn_index is None or len(st.models) < 2:
            return
        s = step(d, st.turn_index)
        epoch = st.epoch
        backends = [(m, services.registry[m]) for m in st.models]
        gt_calls = s.gt.calls() if s.gt is not None else []
        final = None
        async for sides in stream_sides(backends, s.messages, tools=s.tools, stall_timeout=services.stall_timeout):
            if st.epoch != epoch:
                return  # the annotator moved on (rapid clicks): leaving the loop cancels these streams
            final = sides
            yield {
                views[i].answer: (
                    render.error_html(x.error, lang)
                    if x.error
                    else render.answer_html(x.text, x.tool_calls, lang, streaming=not x.done)
                )
                for i, x in enumerate(sides)
            }
        if final is None or st.epoch != epoch:
            return
        out: dict[Any, Any] = {}
        asked = answers.prompt_hash(s)
        context = Context.replay(request.username)
        for i, side in enumerate(final):
            # Kiwi morphemes for the GT diff take tens of ms: off the event loop, so other pages keep streaming.
            metrics = await asyncio.to_thread(rating.metrics_for, d, s, side, services.splitter)
            gen_id = await asyncio.to_thread(
                functools.partial(
                    answers.record_answer,
                    services.store,
                    model_id=services.model_id(side.model),
                    eval_set=d.eval_set,
                    dialog_id=d.id,
                    turn_index=s.turn_index,
                    side=side,
                    context=context,
                    metrics=metrics,
                    prompt_hash=asked,
                )
            )
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

    async def on_submit(
        request: gr.Request,
        shown_dialog: str | None,
        shown_turn: int | None,
        chosen: list[str],
        st: ReplayState,
        *values: Any,
    ) -> dict[Any, Any]:
        """Save every side's rating in one transaction (an edit keeps the earlier version in the history),
        then open the next unrated turn. Refusals raise gr.Error before anything is saved, so the
        annotator's half-filled form stays."""
        chosen = (
            [m for m in chosen if isinstance(m, str)] if isinstance(chosen, list) else []
        )  # as sent (no preprocess)
        annotator = request.username
        if not annotator:
            raise gr.Error(t(lang, "login_required"), title=t(lang, "toast_error"))
        if st.dialog_id is None or not st.generation_ids or any(g is None for g in st.generation_ids):
            raise gr.Error(t(lang, "nothing_to_rate"), title=t(lang, "toast_error"))
        if shown_dialog != st.dialog_id or isinstance(shown_turn, bool) or shown_turn != st.turn_index:
            # The dropdowns show another turn than the sides do: never rate a turn that is not on screen.
            raise gr.Error(t(lang, "stale_submit"), title=t(lang, "toast_error"))
        items, missing = [], []
        for i, (score, criteria, comment) in enumerate(split_rating_values(list(values))[: len(st.models)]):
            if st.failed[i]:
                continue  # failed sides are excluded from rating
            if score is None:
                missing.append(chr(ord("A") + i))
                continue
            items.append((st.generation_ids[i], *checked_rating(score, criteria, comment, lang)))
        if missing:
            raise gr.Error(t(lang, "score_required", sides=", ".join(missing)), title=t(lang, "toast_error"))
        if not items:
            raise gr.Error(t(lang, "nothing_to_rate"), title=t(lang, "toast_error"))
        await asyncio.to_thread(services.store.save_ratings, annotator, items)
        d = services.by_id[st.dialog_id]
        turn_name = t(lang, "turn_label", n=_turn_number(d, st.turn_index))
        saved_note = t(lang, "updated_turn" if st.editing else "saved_turn", n=len(items), dialog=d.id, turn=turn_name)
        nxt = rating.next_unrated(
            services.store, annotator, d.eval_set, services.dialogs_of(d.eval_set), after=(st.dialog_id, st.turn_index)
        )
        # Everything rated: the turn just saved stays on screen, reopened as what is now stored.
        target, note = (nxt, "") if nxt is not None else (step(d, st.turn_index), t(lang, "all_rated"))
        return await _show(
            services.by_id[target.dialog_id], target, st, request, chosen, note=note, extra={saved: saved_note}
        )

    # Opening a step is a short event; its answers stream in the event that follows it (``stream_answers``).
    # always_last: choices made while a step is being opened collapse into one after it; a choice during a
    # generation opens its step at once, and the older generation stops at its next token (the epoch).
    # A submit counts once while it runs, and the next turn's submit stays disabled until its answers are
    # in, so a double click never reaches a turn whose answers are still being generated.
    quiet = {"show_progress": "hidden", "trigger_mode": "always_last"}
    answer_outputs = [state, submit, *side_outputs]  # what stream_answers writes: no dropdown
    opens = [
        eval_set.input(on_set, [eval_set, models, state], outputs, **quiet),
        dialog.input(on_dialog, [dialog, models, state], outputs, **quiet),
        turn.input(on_turn, [turn, models, state], outputs, **quiet),
        models.input(on_models, [models, state], outputs, **quiet),
        next_btn.click(on_next, [models, state], outputs, **quiet),
        regen_btn.click(on_regenerate, [models, state], outputs, **quiet),
        # preprocess=False: the values as sent; on_submit checks each (checked_rating, the turn on screen).
        submit.click(
            on_submit,
            [dialog, turn, models, state, *rating_inputs(views)],
            outputs,
            show_progress="hidden",
            trigger_mode="once",
            preprocess=False,
        ),
        app.load(fill_models, None, [models], show_progress="hidden").then(
            on_start, [eval_set, models, state], outputs, show_progress="hidden"
        ),
    ]
    # success: a refused submit opens nothing, so nothing is answered. multiple: a new step's answers start
    # while an older generation is still winding down.
    answering = [
        event.success(stream_answers, [state], answer_outputs, show_progress="hidden", trigger_mode="multiple")
        for event in opens
    ]
    streams = opens + answering
    stop_btn.click(None, None, None, cancels=streams)
