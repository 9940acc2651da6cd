"""Teacher-forced replay: the prompt for assistant turn t is system + tools + the reference turns[0:t]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arena.core.dialogs import Dialog, Turn


@dataclass(frozen=True)
class ReplayStep:
    """One assistant turn to answer: the prompt a model sees and the ground truth it is compared with."""

    dialog_id: str
    turn_index: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    gt: Turn | None = None
    references: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """A stable identifier of this step, e.g. ``fashion-coat-01#3``."""
        return f"{self.dialog_id}#{self.turn_index}"


def build_messages(dialog: Dialog, turn_index: int) -> list[dict[str, Any]]:
    """The OpenAI chat messages a model sees before answering ``turn_index`` (reference history only)."""
    if not 0 <= turn_index <= len(dialog.turns):
        raise IndexError(f"{dialog.id}: turn {turn_index} out of range 0..{len(dialog.turns)}")
    messages: list[dict[str, Any]] = []
    if dialog.system:
        messages.append({"role": "system", "content": dialog.system})
    messages.extend(turn.to_message() for turn in dialog.turns[:turn_index])
    return messages


def step(dialog: Dialog, turn_index: int) -> ReplayStep:
    """The replay step for assistant turn ``turn_index`` of ``dialog``."""
    gt = dialog.turns[turn_index] if turn_index < len(dialog.turns) else None
    if gt is not None and gt.role != "assistant":
        raise ValueError(f"{dialog.id}: turn {turn_index} is a {gt.role} turn, not an assistant turn")
    return ReplayStep(
        dialog_id=dialog.id,
        turn_index=turn_index,
        messages=build_messages(dialog, turn_index),
        tools=list(dialog.tools),
        gt=gt,
        references=dialog.references.get(str(turn_index), []),
    )


def steps(dialog: Dialog) -> list[ReplayStep]:
    """Every assistant turn as a replay step, in order, plus an open final step (no GT) when the
    dialog ends on a user or tool turn: the seed's persona tests ask for an answer nobody wrote."""
    out = [step(dialog, i) for i in dialog.assistant_indices()]
    if dialog.turns[-1].role != "assistant":
        out.append(step(dialog, len(dialog.turns)))
    return out


def live_messages(dialog: Dialog | None, history: list[dict[str, Any]], user_text: str) -> list[dict[str, Any]]:
    """Messages for live mode: optional system prompt from ``dialog``, the free history, then the new user turn."""
    messages: list[dict[str, Any]] = []
    if dialog is not None and dialog.system:
        messages.append({"role": "system", "content": dialog.system})
    messages.extend(history)
    messages.append({"role": "user", "content": user_text})
    return messages
