"""Live side-by-side tab: the annotator types, the chosen models answer at once; regenerate and stop."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from arena.annotation.answers import record_answer
from arena.annotation.sidebyside import Side, stream_sides
from arena.core.answers import Context
from arena.core.i18n import t
from arena.web.policies import blind_models, named_models
from arena.web.services import Services
from arena.web.ui import render
from arena.web.ui.sides import build_sides, reset_updates

MAX_MESSAGE_CHARS = 4000  # longer inputs are refused: they only stall tiny-context models


@dataclass
class LiveState:
    """Per-session conversation: each side keeps its own history (it saw its own answers)."""

    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    models: list[str] = field(default_factory=list)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    turns: int = 0
    # Set by an accepted message or Regenerate, taken by the answer that follows: a refused message
    # (empty, too long, too few models) must not re-run a turn that Stop left unanswered.
    pending: bool = False


def _side_messages(system: str | None, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # None when the (closed) system-prompt accordion's textbox never rendered in the browser.
    return ([{"role": "system", "content": system}] if system and system.strip() else []) + history


def _assistant_message(side: Side) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": side.text}
    if side.tool_calls:
        msg["tool_calls"] = side.openai_tool_calls()
    return msg


# Stop must take effect on the page at once, not when the server's cancellation comes back: updates
# already on the wire would keep the text growing for a few more frames. So the click freezes what the
# page shows (a copy of each answer, without its cursor) and hides the live answer behind it; the next
# Send, Regenerate or New chat drops the copies.
FREEZE_JS = """() => {
  document.querySelectorAll('[id^="live-side-"]').forEach(col => {
    const live = col.querySelector('[id^="live-answer-"]');
    if (!live || col.classList.contains('arena-stopped')) return;
    const copy = live.cloneNode(true);
    copy.removeAttribute('id');
    copy.classList.add('arena-frozen');
    live.after(copy);
    col.classList.add('arena-stopped');
  });
}"""
UNFREEZE_JS = """() => {
  document.querySelectorAll('.arena-frozen').forEach(e => e.remove());
  document.querySelectorAll('[id^="live-side-"]').forEach(e => e.classList.remove('arena-stopped'));
}"""


def build(services: Services, lang: str, app: gr.Blocks | None = None) -> None:
    """Render the live tab inside the current Blocks context and wire its events."""
    state = gr.State(LiveState())
    with gr.Row():
        # Filled on page load with what this account may use (arena.web.policies; runtime adapters included):
        # a component's initial value is public in Gradio's /config.
        models = gr.CheckboxGroup([], value=[], label=t(lang, "models_pick"), elem_id="live-models")

    def fill_models(request: gr.Request) -> dict[Any, Any]:
        names = named_models(services.registry, services.store, request.username)
        return {models: gr.update(choices=names, value=names[:2])}

    if app is not None:
        app.load(fill_models, None, [models], show_progress="hidden")
    with gr.Accordion(t(lang, "persona_from"), open=False):
        system = gr.Textbox(lines=3, show_label=False, elem_id="live-system")
    views = build_sides(lang, "live", with_gt=False, with_rating=False)
    with gr.Row():
        message = gr.Textbox(label=t(lang, "your_message"), scale=5, elem_id="live-message")
        send = gr.Button(t(lang, "send"), variant="primary", scale=1, elem_id="live-send")
    with gr.Row():
        regen = gr.Button(t(lang, "regenerate"), elem_id="live-regenerate")
        stop = gr.Button(t(lang, "stop"), variant="stop", elem_id="live-stop")
        clear = gr.Button(t(lang, "clear"), elem_id="live-clear")
    status = gr.Markdown(elem_id="live-status")
    side_outputs = [c for v in views for c in (v.column, v.header, v.answer, v.timing)]

    def transcript(history: list[dict[str, Any]], tail: str = "") -> str:
        return render.dialog_html(history, lang, reference=False) + tail

    def start(text: str, chosen: list[str], st: LiveState, request: gr.Request) -> dict[Any, Any]:
        text = (text or "").strip()
        if not text:
            return {status: t(lang, "empty_message")}
        if len(text) > MAX_MESSAGE_CHARS:
            return {status: t(lang, "message_too_long", n=len(text), max=MAX_MESSAGE_CHARS)}
        allowed = named_models(services.registry, services.store, request.username)
        picked = [m for m in chosen if m in allowed][:4]  # a forged pick of a withheld model is dropped
        if len(picked) < 2:  # a side-by-side comparison, as the picker's label says (2–4)
            return {status: t(lang, "pick_models")}
        if picked != st.models:  # a new set of models starts a new conversation
            st.models, st.histories = picked, [[] for _ in picked]
        for h in st.histories:
            h.append({"role": "user", "content": text})
        st.pending = True
        out = reset_updates(views, picked, lang)
        out.update({state: st, message: "", status: ""})
        return out

    def drop_last_answer(st: LiveState) -> dict[Any, Any]:
        for h in st.histories:
            if h and h[-1]["role"] == "assistant":
                h.pop()
        st.pending = True
        return {state: st}

    async def answer(system_text: str, st: LiveState, request: gr.Request):
        pending, st.pending = st.pending, False
        if (
            not pending
            or not st.models
            or not st.histories
            or st.histories[0][-1:] == []
            or st.histories[0][-1]["role"] != "user"
        ):
            return
        if withheld := set(st.models) & blind_models(services.store, request.username):
            # A round opened since this conversation started (regenerate): its models answer no more.
            yield {
                views[i].answer: render.error_html(t(lang, "model_withheld"), lang)
                for i, m in enumerate(st.models)
                if m in withheld
            }
            return
        backends = [(m, services.registry[m]) for m in st.models]
        # Every side saw the same user turns; their own earlier answers differ, so each gets its own history.
        # One stream for all sides: each update carries every answer, so each answer's HTML only grows
        # from one update to the next and Gradio sends just the new characters.
        current: list[Side] = []
        async for sides in stream_sides(
            backends,
            [],
            side_messages=[_side_messages(system_text, h) for h in st.histories],
            stall_timeout=services.stall_timeout,
        ):
            current = sides
            yield {
                views[i].answer: transcript(
                    st.histories[i],
                    render.error_html(side.error, lang)
                    if side.error
                    else render.answer_html(side.text, side.tool_calls, lang, streaming=not side.done),
                )
                for i, side in enumerate(sides)
            }
        out: dict[Any, Any] = {}
        st.turns += 1
        for i, side in enumerate(current):
            if not side.error:
                st.histories[i].append(_assistant_message(side))
            if side.finish is not None:
                tm = side.finish.timings
                out[views[i].timing] = render.timings_line(
                    tm.ttft_s, tm.tokens_per_s, side.finish.usage.completion_tokens, lang
                )
            await asyncio.to_thread(
                functools.partial(
                    record_answer,
                    services.store,
                    model_id=services.model_id(side.model),
                    eval_set="live",
                    dialog_id=f"live-{st.session}",
                    turn_index=st.turns,
                    side=side,
                    context=Context.live(request.username),
                )
            )
        out[state] = st
        yield out

    def reset(st: LiveState) -> dict[Any, Any]:
        fresh = LiveState()
        out = reset_updates(views, st.models, lang)
        out.update({state: fresh, status: ""})
        return out

    ans_outputs = [state, *(v.answer for v in views), *(v.timing for v in views)]
    sent = [
        send.click(start, [message, models, state], [state, message, status, *side_outputs]),
        message.submit(start, [message, models, state], [state, message, status, *side_outputs]),
    ]
    streams = [ev.then(answer, [system, state], ans_outputs, show_progress="hidden") for ev in sent]
    streams.append(
        regen.click(drop_last_answer, [state], [state]).then(
            answer, [system, state], ans_outputs, show_progress="hidden"
        )
    )
    stop.click(None, None, None, cancels=streams, js=FREEZE_JS)
    for trigger in (send.click, message.submit, regen.click, clear.click):
        trigger(None, None, None, js=UNFREEZE_JS)
    clear.click(reset, [state], [state, status, *side_outputs], cancels=streams)
