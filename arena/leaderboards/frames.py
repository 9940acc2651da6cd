"""Store frames to the inputs of arena.stats: model-level outcomes, categories, per-answer metrics, filters."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from arena.core.answers import Context
from arena.core.dialogs import Dialog
from arena.core.metrics import Splitter, score_step, split_words
from arena.stats.style import STYLE_FEATURES
from arena.store import WINNER_OF_CHOICE
from backends.base import ToolCall

if TYPE_CHECKING:
    pass

SCORE_GROUPS = ("eval_set", "category", "round")
# Group labels for ratings outside any round (replay) and dialogs without a category.
NO_GROUP = {"round": "(no round)", "category": "(none)"}

DialogIndex = Mapping[tuple[str, str], Dialog]
# Style counts of both answers of a vote, for style control (arena.stats.style).
STYLE_COLUMNS = tuple(f"{f}_{side}" for f in STYLE_FEATURES for side in ("a", "b"))


@dataclass(frozen=True)
class Filters:
    """Which slice of the store a leaderboard covers; None means everything."""

    round: str | None = None
    eval_set: str | None = None
    category: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"round": self.round, "eval_set": self.eval_set, "category": self.category}


def index_dialogs(dialogs: Iterable[Dialog]) -> dict[tuple[str, str], Dialog]:
    """Dialogs by (eval_set, dialog id), the key the store records with every generation."""
    return {(d.eval_set, d.id): d for d in dialogs}


def _categories(frame: pd.DataFrame, dialogs: DialogIndex) -> pd.Series:
    keys = zip(frame["eval_set"], frame["dialog_id"])
    return pd.Series([getattr(dialogs.get(k), "category", None) for k in keys], index=frame.index, dtype=object)


def _answer_key(text: Any, tool_calls: Any) -> str:
    """Short hash of what an annotator saw: identical answers stored in different contexts are one item."""
    payload = json.dumps([text or "", tool_calls or []], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- adapters


def ratings_input(ratings: pd.DataFrame, generations: pd.DataFrame, dialogs: DialogIndex) -> pd.DataFrame:
    """The store's ratings frame as stats' ``ratings`` input, plus category and the rated answer's key."""
    keys = {
        gid: _answer_key(text, calls)
        for gid, text, calls in zip(generations["generation_id"], generations["text"], generations["tool_calls"])
    }
    out = ratings.assign(
        category=_categories(ratings, dialogs),
        answer=ratings["generation_id"].map(keys),
        score=ratings["score"].astype(float),
    )
    return out[
        [
            "model",
            "dialog_id",
            "eval_set",
            "category",
            "round",
            "round_id",
            "turn_index",
            "answer",
            "annotator",
            "score",
            "generation_id",
        ]
    ]


def votes_input(votes: pd.DataFrame, dialogs: DialogIndex) -> pd.DataFrame:
    """The store's votes frame as stats' ``votes`` input: choice -> winner, a_position -> left_model."""
    unknown = set(votes["choice"]) - set(WINNER_OF_CHOICE)
    if unknown:
        raise ValueError(f"unknown vote choice(s) {sorted(unknown)}; expected {sorted(WINNER_OF_CHOICE)}")
    bad_position = set(votes["a_position"]) - {"left", "right"}
    if bad_position:
        raise ValueError(f"unknown a_position value(s) {sorted(bad_position)}; expected left or right")
    left = np.where(votes["a_position"] == "left", votes["model_a"], votes["model_b"])
    out = votes.assign(
        winner=votes["choice"].map(WINNER_OF_CHOICE),
        left_model=left,
        item=votes["item_key"],
        category=_categories(votes, dialogs),
    )
    return out[
        [
            "round",
            "round_id",
            "item",
            "eval_set",
            "dialog_id",
            "turn_index",
            "category",
            "model_a",
            "model_b",
            "left_model",
            "winner",
            "annotator",
            "vote_id",
            *[c for c in STYLE_COLUMNS if c in out.columns],
        ]
    ]


def _step_metrics(dialog: Dialog | None, turn_index: int, text: str, calls: Any, splitter: Splitter) -> dict[str, Any]:
    """Metrics score_step computes for one stored answer; empty when the answer has no GT turn to compare with."""
    if dialog is None or not 0 <= turn_index < len(dialog.turns) or dialog.turns[turn_index].role != "assistant":
        return {}
    m = score_step(dialog, turn_index, text or "", ToolCall.list_from_openai(calls), splitter)
    earlier = any(t.role == "assistant" and t.content for t in dialog.turns[:turn_index])
    # Without an earlier assistant turn there is nothing to repeat: NaN, not a 0 that would dilute the mean.
    rep = {"repetition": m.repetition, "repeats_earlier_turn": float(m.repeats_earlier_turn)} if earlier else {}
    return {
        "similarity": m.similarity,
        "tool_name_match": m.tool_name_match,
        "tool_args_match": m.tool_args_match,
        **rep,
    }


def _comparable(generations: pd.DataFrame) -> pd.Series:
    """Not a live chat: those have no GT and each model saw a different conversation."""
    return generations["context"].map(Context.kind_of).ne("live").astype(bool)


def generations_input(
    generations: pd.DataFrame, dialogs: DialogIndex, splitter: Splitter = split_words
) -> pd.DataFrame:
    """Stored answers as stats' ``generations`` input; live chats and failed answers are left out.

    Repetition is computed here from the dialog, and GT metrics missing in the store (e.g. answers
    pre-generated for a round) are filled the same way; stored values win so the UI and the table agree.
    """
    gen = generations[_comparable(generations) & generations["error"].isna()].copy()
    # Kiwi segmentation dominates the cost, and the same texts recur (GT and earlier turns for every model,
    # identical answers stored per annotator): segment each text once and score each distinct answer once.
    split = functools.lru_cache(maxsize=None)(splitter)
    memo: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    rows = []
    for e, d, t, x, c in zip(gen["eval_set"], gen["dialog_id"], gen["turn_index"], gen["text"], gen["tool_calls"]):
        key = (e, d, int(t), _answer_key(x, c))
        if key not in memo:
            memo[key] = _step_metrics(dialogs.get((e, d)), int(t), x, c, split)
        rows.append(memo[key])
    computed = pd.DataFrame(
        rows,
        index=gen.index,
        columns=["similarity", "tool_name_match", "tool_args_match", "repetition", "repeats_earlier_turn"],
    ).astype(float)
    for name in ("similarity", "tool_name_match", "tool_args_match"):
        # Nullable booleans: to_numeric keeps <NA> as NaN so fillna can see it.
        gen[name] = pd.to_numeric(gen[name].astype(object), errors="coerce").astype(float).fillna(computed[name])
    gen["repetition"] = computed["repetition"]
    gen["repeats_earlier_turn"] = computed["repeats_earlier_turn"]
    gen["category"] = _categories(gen, dialogs)
    return gen.reset_index(drop=True)


def apply_filters(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows of ``frame`` in the chosen round (by name or id), eval set and category."""
    keep = pd.Series(True, index=frame.index)
    if filters.round:
        by_name = frame["round"].eq(filters.round)
        by_id = frame["round_id"].astype("string").eq(filters.round).fillna(False).astype(bool)
        keep &= by_name | by_id
    if filters.eval_set:
        keep &= frame["eval_set"] == filters.eval_set
    if filters.category:
        keep &= frame["category"] == filters.category
    return frame[keep].reset_index(drop=True)
