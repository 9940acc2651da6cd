"""Items of a round: which replay turns, which model pairs, and the screen side of answer A (from the round's secret)."""

from __future__ import annotations

import fnmatch
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arena.core.dialogs import Dialog
from arena.core.replay import ReplayStep, steps
from arena.rounds.config import SCREEN_CHOICES, RoundConfig, RoundError

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Item:
    """One blind pair: a replay turn, two models, and the screen side answer A is shown on."""

    key: str
    eval_set: str
    dialog_id: str
    turn_index: int
    model_a: str
    model_b: str
    a_position: str  # "left" | "right"

    @property
    def left_model(self) -> str:
        return self.model_a if self.a_position == "left" else self.model_b

    @property
    def right_model(self) -> str:
        return self.model_b if self.a_position == "left" else self.model_a

    @property
    def step_key(self) -> tuple[str, str, int]:
        return (self.eval_set, self.dialog_id, self.turn_index)


# ------------------------------------------------------------------------------------------ items


def select_steps(config: RoundConfig, dialogs: Iterable[Dialog]) -> list[tuple[Dialog, ReplayStep]]:
    """The replay turns the round judges, in eval-set file order, after the subset filters."""
    out = []
    for d in dialogs:
        if d.eval_set not in config.eval_sets:
            continue
        if config.dialogs and not any(fnmatch.fnmatchcase(d.id, p) for p in config.dialogs):
            continue
        if config.categories and d.category not in config.categories:
            continue
        out.extend((d, s) for s in steps(d))
    return out


def all_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair, each in config order (the first listed is model A)."""
    return list(itertools.combinations(models, 2))


def choose_pairs(config: RoundConfig, rng: random.Random) -> list[int]:
    """Indexes into :func:`all_pairs` for one turn: all of them, or a weighted sample without replacement."""
    pairs = all_pairs(config.models)
    if config.pairing == "all":
        return list(range(len(pairs)))
    weight = {m: config.weights.get(m, 1.0) for m in config.models}
    left = list(range(len(pairs)))
    chosen: list[int] = []
    for _ in range(config.pairs_per_turn or 0):
        # A pair's chance is proportional to the product of its models' weights.
        pick = rng.choices(left, weights=[weight[pairs[i][0]] * weight[pairs[i][1]] for i in left])[0]
        chosen.append(pick)
        left.remove(pick)
    return sorted(chosen)


def build_items(config: RoundConfig, dialogs: Iterable[Dialog], *, secret: str) -> list[Item]:
    """The round's items, reproducible from config, seed and the round's secret; each turn draws from
    its own RNG, so narrowing the subset filter leaves the other turns' pairs and positions as they were.

    The secret never leaves the server: with the seed alone (public, and 0 by default) anyone could
    compute from this code which side shows which model for every item of the round.
    """
    pairs = all_pairs(config.models)
    items = []
    for d, s in select_steps(config, dialogs):
        rng = random.Random(f"{secret}:{config.seed}:{d.eval_set}/{d.id}#{s.turn_index}")
        for p in choose_pairs(config, rng):
            a, b = pairs[p]
            items.append(
                Item(
                    key=f"{d.eval_set}/{d.id}#{s.turn_index}/{p}",
                    eval_set=d.eval_set,
                    dialog_id=d.id,
                    turn_index=s.turn_index,
                    model_a=a,
                    model_b=b,
                    a_position=rng.choice(("left", "right")),
                )
            )
    return items


def count_items(config: RoundConfig, dialogs: Iterable[Dialog]) -> int:
    """How many items the round will have (what draws depend on the secret does not change the count)."""
    per_turn = len(all_pairs(config.models)) if config.pairing == "all" else config.pairs_per_turn or 0
    return len(select_steps(config, dialogs)) * per_turn


def screen_to_choice(screen: str, a_position: str) -> str:
    """The stored choice (in terms of model A/B) for what was clicked (in terms of screen sides)."""
    if screen not in SCREEN_CHOICES:
        raise RoundError(f"vote must be one of {SCREEN_CHOICES}, not {screen!r}", code="bad_vote")
    if screen in ("tie", "both_bad"):
        return screen
    return "a" if screen == a_position else "b"
