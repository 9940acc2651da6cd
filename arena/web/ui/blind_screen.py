"""What the blind tab shows, as pure functions: the item before the vote, the reveal after it.

The tab's handlers only fetch (queue, store) and hand these screens to Gradio, so "no model identity
before the vote" is a property of ``item_screen`` that a unit test checks directly: its input carries
the item with both model names, its output must not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from arena.core.dialogs import Dialog
from arena.core.i18n import t
from arena.core.replay import step
from arena.rounds import Assignment
from arena.web.ui import render
from arena.web.ui.render import SIDE_LETTERS
from backends.base import ToolCall


class StoredAnswer(Protocol):
    """The fields of a stored generation the screens read."""

    text: str
    tool_calls: list[dict[str, Any]] | None
    ttft_ms: float | None
    tokens_per_s: float | None
    tokens: int | None
    similarity: float | None


@dataclass(frozen=True)
class ItemScreen:
    """An item before the vote: the dialog so far, the reference, and two answers labelled A and B only."""

    history_html: str
    gt_html: str
    system: str
    answers_html: tuple[str, str]  # left (A), right (B)


@dataclass(frozen=True)
class RevealScreen:
    """After the vote: each side's header with its model, and its timings and GT similarity."""

    headers: tuple[str, str]
    timings: tuple[str, str]


def item_screen(
    assignment: Assignment, dialog: Dialog, left: StoredAnswer, right: StoredAnswer, lang: str
) -> ItemScreen:
    """The item as the annotator sees it before voting: answer texts and tool calls, no name, no timing."""
    s = step(dialog, assignment.item.turn_index)
    gt_calls = s.gt.calls() if s.gt is not None else []
    answers = tuple(render.answer_html(g.text, ToolCall.list_from_openai(g.tool_calls), lang) for g in (left, right))
    return ItemScreen(
        history_html=render.dialog_html(s.messages, lang),
        gt_html=render.gt_html(s.gt.content if s.gt else None, gt_calls, None, lang),
        system=dialog.system or "",
        answers_html=(answers[0], answers[1]),
    )


def reveal_screen(assignment: Assignment, left: StoredAnswer, right: StoredAnswer, lang: str) -> RevealScreen:
    """Names, timings and similarity, for after the vote is stored."""
    headers, timings = [], []
    for i, (model, g) in enumerate(zip((assignment.item.left_model, assignment.item.right_model), (left, right))):
        headers.append(f"**{SIDE_LETTERS[i]}** · {model}")
        line = render.timings_line(g.ttft_ms / 1000 if g.ttft_ms is not None else None, g.tokens_per_s, g.tokens, lang)
        if g.similarity is not None:
            line += f" · {t(lang, 'similarity')} {g.similarity:.2f}"
        timings.append(line)
    return RevealScreen(headers=(headers[0], headers[1]), timings=(timings[0], timings[1]))
