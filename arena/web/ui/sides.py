"""The side-by-side columns: one parameterised component for replay, live and blind modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena.core.i18n import t
from arena.web.ui.render import SIDE_LETTERS

MAX_SIDES = 4
CRITERIA = ("fluency", "faithful_to_tool", "persona_consistent", "tool_use_correct")


def checked_rating(score: Any, criteria: Any, comment: Any, lang: str) -> tuple[int, list[str], str]:
    """(score, criteria, comment) of one side exactly as the page sent them; gr.Error for anything the
    form cannot send. The submit events skip Gradio's preprocessing (``preprocess=False``), so this is
    the only check: Radio's own let a JSON ``true`` through (True == 1 in Python) and ``int()`` stored it
    as 1, and Textbox turned a number or a list into its ``str()`` before any handler saw it."""
    from arena.store.store import MAX_COMMENT_CHARS

    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise gr.Error(t(lang, "score_invalid", value=repr(score)[:40]), title=t(lang, "toast_error"))
    criteria = [] if criteria is None else criteria
    if not isinstance(criteria, list) or any(c not in CRITERIA for c in criteria):
        raise gr.Error(
            t(lang, "criteria_invalid", value=repr(criteria)[:60], known=", ".join(CRITERIA)),
            title=t(lang, "toast_error"),
        )
    comment = "" if comment is None else comment
    if not isinstance(comment, str):
        raise gr.Error(t(lang, "comment_invalid", kind=type(comment).__name__), title=t(lang, "toast_error"))
    if len(comment) > MAX_COMMENT_CHARS:
        raise gr.Error(
            t(lang, "comment_too_long", n=f"{len(comment):,}", limit=f"{MAX_COMMENT_CHARS:,}"),
            title=t(lang, "toast_error"),
        )
    return score, list(dict.fromkeys(criteria)), comment


@dataclass
class SideView:
    """The components of one side."""

    column: gr.Column
    header: gr.Markdown
    answer: gr.HTML
    gt: gr.HTML | None
    timing: gr.Markdown
    score: gr.Radio | None
    criteria: gr.CheckboxGroup | None
    comment: gr.Textbox | None

    def rating_components(self) -> list[gr.components.Component]:
        return [c for c in (self.score, self.criteria, self.comment) if c is not None]


def build_sides(lang: str, prefix: str, *, with_gt: bool, with_rating: bool, n: int = MAX_SIDES) -> list[SideView]:
    """``n`` side columns in one row; element ids are ``{prefix}-score-{i}`` etc. for shortcuts and tests."""
    views = []
    with gr.Row(equal_height=False):
        for i in range(n):
            with gr.Column(visible=i < 2, elem_id=f"{prefix}-side-{i}", elem_classes=["arena-side"]) as column:
                header = gr.Markdown(f"**{SIDE_LETTERS[i]}**", elem_id=f"{prefix}-header-{i}")
                answer = gr.HTML(elem_id=f"{prefix}-answer-{i}")
                gt = gr.HTML(elem_id=f"{prefix}-gt-{i}") if with_gt else None
                timing = gr.Markdown(elem_id=f"{prefix}-timing-{i}", elem_classes=["arena-timing"])
                score = criteria = comment = None
                if with_rating:
                    score = gr.Radio(
                        choices=[(str(v), v) for v in range(1, 6)],
                        label=t(lang, "score_label", side=SIDE_LETTERS[i]),
                        elem_id=f"{prefix}-score-{i}",
                        interactive=False,
                    )
                    criteria = gr.CheckboxGroup(
                        choices=[(t(lang, f"crit_{c}"), c) for c in CRITERIA],
                        label=t(lang, "criteria"),
                        elem_id=f"{prefix}-criteria-{i}",
                        interactive=False,
                    )
                    comment = gr.Textbox(
                        label=t(lang, "comment"), lines=1, elem_id=f"{prefix}-comment-{i}", interactive=False
                    )
            views.append(SideView(column, header, answer, gt, timing, score, criteria, comment))
    return views


def reset_updates(views: list[SideView], models: list[str], lang: str, *, reveal: bool = True) -> dict[Any, Any]:
    """Updates that show one column per model (hidden beyond), cleared and not yet ratable."""
    out: dict[Any, Any] = {}
    for i, view in enumerate(views):
        active = i < len(models)
        out[view.column] = gr.update(visible=active)
        name = f" · {models[i]}" if active and reveal else ""
        out[view.header] = f"**{SIDE_LETTERS[i]}**{name}"
        out[view.answer] = ""
        out[view.timing] = ""
        if view.gt is not None:
            out[view.gt] = ""
        if view.score is not None:
            out[view.score] = gr.update(value=None, interactive=False)
            out[view.criteria] = gr.update(value=[], interactive=False)
            out[view.comment] = gr.update(value="", interactive=False)
    return out


def rating_inputs(views: list[SideView]) -> list[gr.components.Component]:
    """Score, criteria and comment of every side, flattened in side order (for handler inputs)."""
    return [c for v in views for c in v.rating_components()]


def split_rating_values(values: list[Any]) -> list[tuple[Any, list[str], str]]:
    """Undo :func:`rating_inputs`' flattening: one (score, criteria, comment) per side."""
    return [(values[i], values[i + 1] or [], values[i + 2] or "") for i in range(0, len(values), 3)]
