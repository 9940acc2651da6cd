"""Rating workflow without Gradio: what to rate next, progress, and storing streamed answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arena.core.answers import Context
from arena.core.dialogs import Dialog
from arena.core.metrics import GenerationMetrics, Splitter, score_step, split_words
from arena.core.replay import ReplayStep, steps
from backends.base import ToolCall

if TYPE_CHECKING:
    from arena.annotation.sidebyside import Side
    from arena.store import Store
    from arena.store.store import RatedAnswer


def all_steps(dialogs: list[Dialog]) -> list[ReplayStep]:
    """Every replay step of the dialogs, in order."""
    return [s for d in dialogs for s in steps(d)]


def progress(store: Store, annotator: str, eval_set: str, dialogs: list[Dialog]) -> tuple[int, int]:
    """(rated, total) replay steps of ``eval_set`` for this annotator."""
    total = {(s.dialog_id, s.turn_index) for s in all_steps(dialogs)}
    rated = store.rated_steps(annotator, eval_set, Context.replay(annotator))
    return len(total & rated), len(total)


def next_unrated(
    store: Store, annotator: str, eval_set: str, dialogs: list[Dialog], after: tuple[str, int] | None = None
) -> ReplayStep | None:
    """The first unrated step after ``after`` (wrapping around), or None when all are rated."""
    rated = store.rated_steps(annotator, eval_set, Context.replay(annotator))
    ordered = all_steps(dialogs)
    start = 0
    if after is not None:
        keys = [(s.dialog_id, s.turn_index) for s in ordered]
        start = keys.index(after) + 1 if after in keys else 0
    for s in ordered[start:] + ordered[:start]:
        if (s.dialog_id, s.turn_index) not in rated:
            return s
    return None


def rated_set(store: Store, annotator: str, eval_set: str) -> set[tuple[str, int]]:
    """(dialog_id, turn_index) of the replay steps of ``eval_set`` this annotator has rated."""
    return store.rated_steps(annotator, eval_set, Context.replay(annotator))


def numbered_steps(dialog: Dialog, rated: set[tuple[str, int]]) -> list[tuple[int, ReplayStep, bool]]:
    """The dialog's steps as the annotator counts them (1, 2, 3 ...: the n-th turn to answer, not the
    message index the dialog file uses), each with whether it is rated."""
    return [(n, s, (s.dialog_id, s.turn_index) in rated) for n, s in enumerate(steps(dialog), start=1)]


def first_unrated_in(dialog: Dialog, rated: set[tuple[str, int]]) -> ReplayStep | None:
    """The dialog's first unrated step, or its first step when every one is rated (None if it has none)."""
    ordered = steps(dialog)
    return next((s for s in ordered if (s.dialog_id, s.turn_index) not in rated), ordered[0] if ordered else None)


def rated_answers(store: Store, annotator: str, dialog: Dialog, step: ReplayStep) -> list[RatedAnswer]:
    """The stored answers of one step this annotator rated last, with their ratings (empty when unrated)."""
    return store.rated_answers(
        annotator,
        eval_set=dialog.eval_set,
        dialog_id=dialog.id,
        turn_index=step.turn_index,
        context=Context.replay(annotator),
    )


def answer_calls(stored: list[dict[str, Any]] | None) -> list[ToolCall]:
    """A stored answer's tool calls (kept in the OpenAI shape) as ToolCalls."""
    return ToolCall.list_from_openai(stored)


def stored_metrics(
    dialog: Dialog,
    step: ReplayStep,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
    splitter: Splitter = split_words,
) -> GenerationMetrics | None:
    """GT metrics of a stored answer, computed as for a fresh one (None for an open step without GT)."""
    if step.gt is None:
        return None
    return score_step(dialog, step.turn_index, text, answer_calls(tool_calls), splitter)


def metrics_for(
    dialog: Dialog, step: ReplayStep, side: Side, splitter: Splitter = split_words
) -> GenerationMetrics | None:
    """GT metrics of one finished side (None for an open step without GT or a failed side)."""
    if side.error or step.gt is None:
        return None
    return score_step(dialog, step.turn_index, side.text, side.tool_calls, splitter)
