"""Round lifecycle against the store: create (draft), start (freeze config, write items), close, reopen, status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from arena.annotation.answers import register_model
from arena.core.dialogs import Dialog
from arena.rounds.config import RoundConfig, RoundError
from arena.rounds.pairing import Item, all_pairs, build_items, select_steps
from arena.stats import pairwise_leaderboard
from arena.stats.active import separation, settled_top
from arena.store import WINNER_OF_CHOICE, NotFound, RoundItemInput, RoundLocked, round_state_error

if TYPE_CHECKING:
    from arena.store import Store
    from backends.registry import Registry


# ------------------------------------------------------------------------------------------ store side


def create_round(store: Store, name: str, config: RoundConfig, *, dialogs: list[Dialog], registry: Registry) -> int:
    """Validate a round against the eval sets, the models file and the annotators; store it as a draft."""
    name = name.strip()
    if not name:
        raise RoundError("the round needs a name")
    # Annotators see round names: a name that spells out a model would unblind the round.
    if shown := [m for m in config.models if m.lower() in name.lower()]:
        raise RoundError(f"the round name {name!r} reveals model(s) {', '.join(shown)}; annotators see it")
    known_sets = {d.eval_set for d in dialogs}
    if missing := [s for s in config.eval_sets if s not in known_sets]:
        raise RoundError(f"unknown eval set(s): {', '.join(missing)}; known: {', '.join(sorted(known_sets))}")
    if missing := [m for m in config.models if m not in registry]:
        raise RoundError(f"model(s) not in the models file: {', '.join(missing)}; known: {', '.join(registry.names())}")
    if missing := [a for a in config.annotators if store.get_annotator(a) is None]:
        raise RoundError(f"unknown annotator(s): {', '.join(missing)} (add them with `arena annotators add`)")
    if not select_steps(config, dialogs):
        raise RoundError("the eval sets and filters select no turns")
    for model in config.models:
        register_model(store, registry, model)
    return store.create_round(name, config.stored(), seed=config.seed)


def load_config(store: Store, round_: int | str) -> tuple[Any, RoundConfig]:
    """The round row and its validated config; NotFound if there is no such round."""
    found = store.get_round(round_)
    if found is None:
        raise NotFound(f"no round {round_!r}", code="no_round", name=round_)
    return found, RoundConfig.model_validate(found.config)


def start_round(store: Store, round_: int | str, *, dialogs: list[Dialog]) -> int:
    """Freeze a draft round and write its items (pairs, positions); returns the number of items."""
    found, config = load_config(store, round_)
    if found.status == "closed":
        # Starting must never look like it worked on a round that stays closed.
        raise round_state_error(RoundLocked, found, f"is closed; reopen it first (`arena round reopen {found.name}`)")
    if found.status != "draft":
        return len(store.round_items(found.id))
    items = build_items(config, dialogs, secret=found.secret)
    if not items:
        raise RoundError("the eval sets and filters select no turns")
    ids = {m.name: m.id for m in store.list_models()}
    if missing := sorted(set(config.models) - set(ids)):
        raise RoundError(f"model(s) never registered: {', '.join(missing)}")
    store.start_round(
        found.id,
        [
            RoundItemInput(
                it.key, n, it.eval_set, it.dialog_id, it.turn_index, ids[it.model_a], ids[it.model_b], it.a_position
            )
            for n, it in enumerate(items)
        ],
    )
    return len(items)


def close_round(store: Store, round_: int | str) -> None:
    """Stop judging a draft or running round; RoundLocked if it is already closed."""
    found, _ = load_config(store, round_)
    if found.status == "closed":
        raise round_state_error(RoundLocked, found, "is already closed")
    store.close_round(found.id)


def reopen_round(store: Store, round_: int | str) -> str:
    """Open a closed round again (running, or draft if it never started); items and votes stay as they were."""
    found, _ = load_config(store, round_)
    return store.reopen_round(found.id)


# What each button / command can do in each state; the rounds tab enables only these.
ROUND_ACTIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"start", "close"}),
    "running": frozenset({"pregen", "close"}),
    "closed": frozenset({"reopen"}),
}


def allowed_actions(status: str | None) -> frozenset[str]:
    """The round actions that work in ``status`` (none for no round)."""
    return ROUND_ACTIONS.get(status or "", frozenset())


def model_names(store: Store) -> dict[int, str]:
    """Model names by store id."""
    return {m.id: m.name for m in store.list_models()}


def load_items(store: Store, round_: int | str, names: Mapping[int, str] | None = None) -> list[Item]:
    """The stored items of a started round, with model names (``names``: from model_names, if already read)."""
    names = model_names(store) if names is None else names
    return [
        Item(r.item_key, r.eval_set, r.dialog_id, r.turn_index, names[r.model_a_id], names[r.model_b_id], r.a_position)
        for r in store.round_items(round_)
    ]


# ------------------------------------------------------------------------------------------ status


@dataclass
class RoundStatus:
    """Where a round stands, for researchers."""

    name: str
    status: str
    judgements: int
    items: int = 0
    items_ready: int = 0
    items_failed: int = 0
    items_done: int = 0
    votes: int = 0
    skips: int = 0
    answers_needed: int = 0
    answers_stored: int = 0
    answers_failed: int = 0
    per_annotator: dict[str, dict[str, int]] = field(default_factory=dict)
    per_pair: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    sampling: str = "uniform"
    # The stopping rule: the round's BT ranking with 95% CIs, and per adjacent pair whether the intervals
    # separate and about how many more votes would separate them (arena.stats.active.separation).
    ranking: pd.DataFrame = field(default_factory=pd.DataFrame)
    adjacent: pd.DataFrame = field(default_factory=pd.DataFrame)
    settled: int = 0  # top places whose order is settled (all models when every adjacent pair separates)
    n_boot: int = 1000

    def stopping_lines(self) -> list[str]:
        """The stopping rule in plain text: ranking, each adjacent pair, and what is settled."""
        if self.ranking.empty:
            return ["ranking: no votes yet"]
        lines = [f"ranking (Bradley-Terry, 95% CI from {self.n_boot} vote resamples):"]
        for k, r in enumerate(self.ranking.itertuples(index=False), 1):
            lines.append(f"  {k}. {r.model}: {r.rating:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]")
        lines.append("adjacent pairs:")
        for r in self.adjacent.itertuples(index=False):
            if r.separated:
                state = "separated"
            elif r.votes_needed is None or pd.isna(r.votes_needed):
                state = "overlapping; cannot estimate the votes needed (no gap yet)"
            else:
                state = f"overlapping; about {int(r.votes_needed)} more votes at the current rate"
            lines.append(f"  {r.upper} > {r.lower} (gap {r.gap:.1f}): {state}")
        n = len(self.ranking)
        if self.settled >= n:
            lines.append(f"the whole order of the {n} models is settled: the round can be closed")
        elif self.settled:
            lines.append(f"top-{self.settled} order settled")
        else:
            lines.append("no place settled yet")
        return lines

    def text(self) -> str:
        """A plain-text report (the CLI's `arena round status`)."""
        lines = [
            f"round {self.name} ({self.status}), {self.judgements} judgement(s) per item",
            f"items: {self.items_done} done / {self.items} total; {self.items_ready} ready to judge,"
            f" {self.items_failed} with a failed answer",
            f"answers: {self.answers_stored} stored / {self.answers_needed} needed, {self.answers_failed} failed",
            f"judgements: {self.votes} votes, {self.skips} skips",
            "per annotator:",
            *(f"  {name}: {c['votes']} votes, {c['skips']} skips" for name, c in self.per_annotator.items()),
            "per model pair:",
            *(f"  {a} vs {b}: {c['votes']} votes / {c['items']} items" for (a, b), c in self.per_pair.items()),
            f"sampling: {self.sampling}",
            *self.stopping_lines(),
        ]
        return "\n".join(lines)


def round_status(store: Store, round_: int | str, *, n_boot: int = 1000) -> RoundStatus:
    """Items done / total, answers stored, vote counts per annotator and per model pair, and the stopping
    rule (ranking, adjacent pairs separated or the votes still needed, settled top places)."""
    found, config = load_config(store, round_)
    out = RoundStatus(found.name, found.status, config.judgements)
    items = load_items(store, found.id)
    answers = Answers.load(store, found.id)
    judged = store.round_judgements(found.id)
    counts = Counter(j.item_key for j in judged if j.kind == "vote")
    out.items = len(items)
    out.items_ready = sum(answers.ready(it) for it in items)
    out.items_failed = sum(answers.failed(it) for it in items)
    out.items_done = sum(counts.get(it.key, 0) >= config.judgements for it in items)
    out.votes = sum(counts.values())
    out.skips = sum(j.kind == "skip" for j in judged)
    needed = {(*it.step_key, m) for it in items for m in (it.model_a, it.model_b)}
    out.answers_needed = len(needed)
    out.answers_stored = sum(1 for k in needed if k in answers.by_key)
    out.answers_failed = sum(1 for k in needed if k in answers.by_key and answers.by_key[k][1])
    for name in config.annotators:
        out.per_annotator[name] = {"votes": 0, "skips": 0}
    for j in judged:
        out.per_annotator.setdefault(j.annotator, {"votes": 0, "skips": 0})[j.kind + "s"] += 1
    for a, b in all_pairs(config.models):
        out.per_pair[(a, b)] = {"items": 0, "votes": 0}
    for it in items:
        cell = out.per_pair.setdefault((it.model_a, it.model_b), {"items": 0, "votes": 0})
        cell["items"] += 1
        cell["votes"] += counts.get(it.key, 0)
    out.sampling = config.sampling
    votes = store.votes_frame(found.id)
    if len(votes):
        votes = votes.assign(winner=votes["choice"].map(WINNER_OF_CHOICE))
        board = pairwise_leaderboard(votes, n_boot=n_boot, seed=config.seed)
        out.ranking = board[["model", "rating", "ci_low", "ci_high"]]
        out.adjacent = separation(board, len(votes))
        out.settled = settled_top(list(out.adjacent["separated"]))
    out.n_boot = n_boot
    return out


@dataclass
class Answers:
    """The round's stored answers by (eval_set, dialog_id, turn_index, model): generation id, failed."""

    by_key: dict[tuple[str, str, int, str], tuple[int, bool]]

    @classmethod
    def load(cls, store: Store, round_id: int, names: Mapping[int, str] | None = None) -> Answers:
        names = model_names(store) if names is None else names
        return cls(
            {
                (g.eval_set, g.dialog_id, g.turn_index, names[g.model_id]): (g.id, g.failed)
                for g in store.round_generations(round_id)
            }
        )

    def get(self, item: Item, model: str) -> tuple[int, bool] | None:
        return self.by_key.get((*item.step_key, model))

    def ready(self, item: Item) -> bool:
        """Both answers stored and neither failed: only then can the item be judged."""
        a, b = self.get(item, item.model_a), self.get(item, item.model_b)
        return a is not None and b is not None and not a[1] and not b[1]

    def failed(self, item: Item) -> bool:
        return any(g is not None and g[1] for g in (self.get(item, item.model_a), self.get(item, item.model_b)))
