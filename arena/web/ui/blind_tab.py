"""Blind A/B tab: an annotator judges stored answers of a round, shown as A (left) and B (right).

Blindness: the served item, with its model names, lives only in ``gr.State`` (kept on the server;
Gradio never sends State values to the browser). Before the vote every update carries answer text,
the reference dialog and labels "A"/"B" only: no model name, no timings, no item key. Names and
timings are revealed by the vote handler, after the vote is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena import rounds
from arena.core.i18n import t
from arena.store import ItemClosed, RatingInput, StoreError
from arena.web.services import Services
from arena.web.ui.blind_screen import item_screen, reveal_screen
from arena.web.ui.messages import error_text
from arena.web.ui.sides import SIDE_LETTERS, build_sides, checked_rating, reset_updates


@dataclass
class BlindState:
    """Per-browser-session state (server side): the item being judged and whether it was voted on."""

    assignment: rounds.Assignment | None = None
    voted: bool = False


def build(app: gr.Blocks, services: Services, lang: str) -> None:
    """Render the blind tab inside ``app`` and wire its events."""
    state = gr.State(BlindState())
    with gr.Row():
        round_dd = gr.Dropdown([], label=t(lang, "blind_round"), elem_id="blind-round", scale=3)
        next_btn = gr.Button(t(lang, "blind_next"), elem_id="blind-next", variant="secondary", scale=1)
    progress = gr.Markdown(elem_id="blind-progress")
    gr.Markdown(t(lang, "blind_shortcuts"), elem_id="blind-shortcuts")  # keys: BLIND_SHORTCUTS_JS in app.py
    with gr.Accordion(t(lang, "system_prompt"), open=False, visible=False) as system_box:
        system_md = gr.Markdown(elem_id="blind-system")
    history = gr.HTML(elem_id="blind-history")
    with gr.Accordion(t(lang, "blind_reference"), open=False):
        gt = gr.HTML(elem_id="blind-gt")
    views = build_sides(lang, "blind", with_gt=False, with_rating=True, n=2)
    for i, view in enumerate(views):
        view.score.label = t(lang, "blind_score_label", side=SIDE_LETTERS[i])
    # Kept on screen (sticky, CSS in app.py) with the status right above the vote: a refusal such as
    # "pick a vote" shows where the annotator is looking, however long the answers are.
    with gr.Column(elem_id="blind-actions"):
        status = gr.Markdown(elem_id="blind-status")
        with gr.Row(equal_height=True):
            vote = gr.Radio(
                [(t(lang, f"blind_vote_{c}"), c) for c in rounds.SCREEN_CHOICES],
                label=t(lang, "blind_vote"),
                elem_id="blind-vote",
                interactive=False,
                scale=4,
            )
            submit = gr.Button(
                t(lang, "blind_submit"), variant="primary", elem_id="blind-submit", interactive=False, scale=1
            )
    with gr.Row():
        skip_reason = gr.Textbox(label=t(lang, "blind_skip_reason"), lines=1, elem_id="blind-skip-reason", scale=4)
        skip_btn = gr.Button(t(lang, "blind_skip"), elem_id="blind-skip", scale=1, interactive=False)

    side_parts = [c for v in views for c in (v.column, v.header, v.answer, v.timing, *v.rating_components())]
    item_outputs = [
        state,
        progress,
        system_box,
        system_md,
        history,
        gt,
        vote,
        submit,
        skip_btn,
        skip_reason,
        status,
        *side_parts,
    ]

    def _progress(round_: int | str, annotator: str) -> str:
        voted, open_ = rounds.annotator_progress(services.store, round_, annotator, services.rounds)
        return t(lang, "blind_progress", voted=voted, open=open_)

    def _cleared(st: BlindState, message: str) -> dict[Any, Any]:
        st.assignment, st.voted = None, False
        out = reset_updates(views, ["A", "B"], lang, reveal=False)
        out.update(
            {
                state: st,
                history: "",
                gt: "",
                system_box: gr.update(visible=False),
                system_md: "",
                vote: gr.update(value=None, interactive=False),
                submit: gr.update(interactive=False),
                skip_btn: gr.update(interactive=False),
                status: message,
            }
        )
        return out

    def load_rounds(request: gr.Request) -> dict[Any, Any]:
        names = rounds.rounds_for(services.store, request.username or "")
        return {
            round_dd: gr.update(choices=names, value=names[0] if names else None),
            status: "" if names else t(lang, "blind_no_rounds"),
        }

    def serve(round_name: str | None, st: BlindState, request: gr.Request) -> dict[Any, Any]:
        """Serve this annotator's next item: answers and context only, never who wrote them."""
        annotator = request.username
        if not annotator:
            return _cleared(st, t(lang, "login_required"))
        if not round_name:
            return _cleared(st, t(lang, "blind_no_rounds"))
        try:
            view = rounds.queue_view(services.store, round_name, annotator, cache=services.rounds)  # item and progress
            assignment = view.next()
            voted, open_ = view.progress()
            progress_text = t(lang, "blind_progress", voted=voted, open=open_)
        except StoreError as exc:
            return _cleared(st, error_text(lang, exc))
        if assignment is None:
            out = _cleared(st, t(lang, "blind_all_done"))
            out[progress] = progress_text
            return out
        item = assignment.item
        dialog = next((d for d in services.dialogs if d.eval_set == item.eval_set and d.id == item.dialog_id), None)
        if dialog is None:
            return _cleared(st, t(lang, "blind_dialog_missing", dialog=f"{item.eval_set}/{item.dialog_id}"))
        left, right = (
            services.store.get_generation(g) for g in (assignment.left_generation, assignment.right_generation)
        )
        screen = item_screen(assignment, dialog, left, right, lang)
        out = _cleared(st, "")
        st.assignment = assignment
        for view, answer in zip(views, screen.answers_html):
            out[view.answer] = answer
            for c in view.rating_components():
                out[c] = gr.update(
                    value=None if c is view.score else ([] if c is view.criteria else ""), interactive=True
                )
        out.update(
            {
                progress: progress_text,
                history: screen.history_html,
                gt: screen.gt_html,
                system_box: gr.update(visible=bool(screen.system)),
                system_md: screen.system,
                vote: gr.update(value=None, interactive=True),
                submit: gr.update(interactive=True),
                skip_btn: gr.update(interactive=True),
                skip_reason: "",
            }
        )
        return out

    def next_clicked(round_name: str | None, st: BlindState, request: gr.Request) -> dict[Any, Any]:
        """Next item, with the round list read again: rounds started (or closed) since the page
        loaded appear (or go) without a browser reload."""
        names = rounds.rounds_for(services.store, request.username or "")
        chosen = round_name if round_name in names else (names[0] if names else None)
        out = serve(chosen, st, request)
        out[round_dd] = gr.update(choices=names, value=chosen)
        return out

    def _reveal(a: rounds.Assignment) -> dict[Any, Any]:
        """After the vote: model names, timings and GT similarity of both answers; inputs locked."""
        out: dict[Any, Any] = {
            vote: gr.update(interactive=False),
            submit: gr.update(interactive=False),
            skip_btn: gr.update(interactive=False),
        }
        left, right = (services.store.get_generation(g) for g in (a.left_generation, a.right_generation))
        screen = reveal_screen(a, left, right, lang)
        for view, header, timing in zip(views, screen.headers, screen.timings):
            out[view.header] = header
            out[view.timing] = timing
            for c in view.rating_components():
                out[c] = gr.update(interactive=False)
        return out

    def submit_vote(request: gr.Request, st: BlindState, choice: str | None, *values: Any) -> dict[Any, Any]:
        annotator = request.username
        a = st.assignment
        if not annotator:
            return {status: t(lang, "login_required")}
        if a is None:
            return {status: t(lang, "nothing_to_rate")}
        if st.voted:
            return {status: t(lang, "blind_already_voted")}
        if choice not in rounds.SCREEN_CHOICES:
            return {status: t(lang, "blind_pick_vote")}
        sides = [values[i : i + 3] for i in range(0, 6, 3)]
        if missing := [SIDE_LETTERS[i] for i, (score, _, _) in enumerate(sides) if score is None]:
            return {status: t(lang, "score_required", sides=", ".join(missing))}
        left, right = (
            RatingInput(gen, *checked_rating(score, crit, comment, lang))
            for gen, (score, crit, comment) in zip((a.left_generation, a.right_generation), sides)
        )
        try:
            stored = rounds.submit_judgement(services.store, a, annotator, choice, left, right)
        except ItemClosed as exc:  # skipped in another tab, or others took the item's last judgement
            return {status: t(lang, f"blind_item_{exc.reason}")}
        except (StoreError, ValueError) as exc:
            return {status: error_text(lang, exc)}
        st.voted = True
        out = _reveal(a)
        out[state] = st
        out[status] = t(lang, "blind_saved" if stored else "blind_already_voted")
        out[progress] = _progress(a.round_id, annotator)
        return out

    def skip(request: gr.Request, round_name: str | None, st: BlindState, reason: str) -> dict[Any, Any]:
        """Record the skip and serve the next item in the same response."""
        annotator = request.username
        a = st.assignment
        if not annotator or a is None:
            return {status: t(lang, "nothing_to_rate")}
        if st.voted:
            return {status: t(lang, "blind_already_voted")}
        if not (reason or "").strip():
            return {status: t(lang, "blind_skip_needs_reason")}
        try:
            rounds.skip_item(services.store, a, annotator, reason)
        except StoreError as exc:
            return {status: error_text(lang, exc)}
        out = serve(round_name, st, request)
        out[status] = t(lang, "blind_skipped") + (f" {out[status]}" if out.get(status) else "")
        return out

    rating_values = [c for v in views for c in v.rating_components()]
    app.load(load_rounds, None, [round_dd, status], api_name="blind_rounds").then(
        serve, [round_dd, state], item_outputs, api_name="blind_next_on_load", show_progress="hidden"
    )
    round_dd.input(serve, [round_dd, state], item_outputs, api_name="blind_round_changed")
    next_btn.click(next_clicked, [round_dd, state], [round_dd, *item_outputs], api_name="blind_next")
    # trigger_mode="once": clicks while a submission is running are dropped in the browser; the
    # store's unique vote per (round, item, annotator) makes any that still arrive count once.
    submit.click(
        submit_vote,
        [state, vote, *rating_values],
        [state, status, progress, vote, submit, skip_btn, *side_parts],
        api_name="blind_submit",
        trigger_mode="once",
        preprocess=False,
    )  # values as sent: checked_rating checks each, the vote is checked above
    skip_btn.click(skip, [round_dd, state, skip_reason], item_outputs, api_name="blind_skip", trigger_mode="once")
