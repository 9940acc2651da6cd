"""Blind A/B rounds without Gradio: config, items (pairs and shown positions), queues, judgements, status.

A round is created as a draft from a :class:`RoundConfig`; starting it freezes the config and writes
its items (one per replay turn and model pair, with the screen side of answer A drawn from the seed)
to the store. Pre-generation (:mod:`arena.pregen`) then stores one answer per model and turn, and
annotators judge those stored answers: the queue serves each annotator items that still need
judgements, least-judged first, never one they have voted on or skipped.

Votes are stored in terms of the item's canonical pair (``model_a`` is the one listed first in the
config): ``choice`` ``a`` means model_a's answer won, whichever side of the screen it was on.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena.dialogs import Dialog
from arena.replay import ReplayStep, steps
from arena.store import NotFound, RatingInput, RoundItemInput, RoundLocked, StoreError
from backends.base import Options

if TYPE_CHECKING:
    from arena.store import Store
    from backends.registry import Registry

SCREEN_CHOICES: tuple[str, ...] = ("left", "right", "tie", "both_bad")


class RoundError(StoreError, ValueError):
    """A round request that cannot be honoured; the message says why, for people."""


class RoundConfig(BaseModel):
    """What a round judges, who judges it and how pairs are drawn; frozen once the round starts."""

    model_config = ConfigDict(extra="forbid")
    eval_sets: list[str] = Field(min_length=1, description="eval-set names whose replay turns are judged")
    dialogs: list[str] = Field(default_factory=list, description="dialog-id patterns (fnmatch); empty = all")
    categories: list[str] = Field(default_factory=list, description="dialog categories to keep; empty = all")
    models: list[str] = Field(min_length=2, description="model entries of the models file (adapters included)")
    pairing: Literal["all", "sampled"] = "all"
    pairs_per_turn: int | None = Field(None, ge=1, description="sampled: pairs drawn for each turn")
    weights: dict[str, float] = Field(default_factory=dict, description="sampled: model weights (default 1)")
    judgements: int = Field(1, ge=1, le=1000, description="independent judgements wanted per item")
    annotators: list[str] = Field(min_length=1, description="who may judge this round")
    seed: int = 0
    options: Options = Field(default_factory=Options, description="sampling options for pre-generation")

    @model_validator(mode="after")
    def _consistent(self) -> "RoundConfig":
        for what, names in (("model", self.models), ("annotator", self.annotators), ("eval set", self.eval_sets)):
            if dupes := sorted(n for n, c in Counter(names).items() if c > 1):
                raise ValueError(f"{what} listed twice: {', '.join(dupes)}")
        if unknown := sorted(set(self.weights) - set(self.models)):
            raise ValueError(f"weights for models not in the round: {', '.join(unknown)}")
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("weights must be positive")
        n_pairs = len(self.models) * (len(self.models) - 1) // 2
        if self.pairing == "sampled":
            if self.pairs_per_turn is None:
                raise ValueError("pairing 'sampled' needs pairs_per_turn")
            if self.pairs_per_turn > n_pairs:
                raise ValueError(f"pairs_per_turn {self.pairs_per_turn} exceeds the {n_pairs} possible pairs")
        elif self.pairs_per_turn is not None or self.weights:
            raise ValueError("pairs_per_turn and weights apply to pairing 'sampled' only")
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in the store (unset sampling options left out)."""
        return {**self.model_dump(mode="json", exclude={"options"}), "options": self.options.model_dump(exclude_none=True)}


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
            items.append(Item(key=f"{d.eval_set}/{d.id}#{s.turn_index}/{p}", eval_set=d.eval_set, dialog_id=d.id,
                              turn_index=s.turn_index, model_a=a, model_b=b,
                              a_position=rng.choice(("left", "right"))))
    return items


def count_items(config: RoundConfig, dialogs: Iterable[Dialog]) -> int:
    """How many items the round will have (what draws depend on the secret does not change the count)."""
    per_turn = len(all_pairs(config.models)) if config.pairing == "all" else config.pairs_per_turn or 0
    return len(select_steps(config, dialogs)) * per_turn


# ------------------------------------------------------------------------------------------ queue


def _tiebreak(seed: int, annotator: str, key: str) -> str:
    # Stable and different per annotator, so people judging at once rarely get the same item.
    return hashlib.sha256(f"{seed}\x00{annotator}\x00{key}".encode()).hexdigest()


def next_item(items: Iterable[Item], *, annotator: str, quota: int, seed: int, counts: Mapping[str, int],
              done: set[str], ready: set[str]) -> Item | None:
    """The item to serve next: ready, not yet judged or skipped by this annotator, under quota;
    the least-judged first so that items reach their quota evenly."""
    candidates = [it for it in items
                  if it.key in ready and it.key not in done and counts.get(it.key, 0) < quota]
    if not candidates:
        return None
    return min(candidates, key=lambda it: (counts.get(it.key, 0), _tiebreak(seed, annotator, it.key)))


def screen_to_choice(screen: str, a_position: str) -> str:
    """The stored choice (in terms of model A/B) for what was clicked (in terms of screen sides)."""
    if screen not in SCREEN_CHOICES:
        raise RoundError(f"vote must be one of {SCREEN_CHOICES}, not {screen!r}")
    if screen in ("tie", "both_bad"):
        return screen
    return "a" if screen == a_position else "b"


# ------------------------------------------------------------------------------------------ store side


def register_model(store: "Store", registry: "Registry", name: str) -> int:
    """The store id of a models-file entry, registering (or refreshing) it."""
    spec = registry.specs[name]
    return store.upsert_model(name, backend=spec.kind, base_model=spec.path or spec.served_model_name or spec.name,
                              adapter=spec.adapter, config=spec.model_dump(mode="json"))


def create_round(store: "Store", name: str, config: RoundConfig, *, dialogs: list[Dialog], registry: "Registry") -> int:
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


def load_config(store: "Store", round_: int | str) -> tuple[Any, RoundConfig]:
    """The round row and its validated config; NotFound if there is no such round."""
    found = store.get_round(round_)
    if found is None:
        raise NotFound(f"no round {round_!r}")
    return found, RoundConfig.model_validate(found.config)


def start_round(store: "Store", round_: int | str, *, dialogs: list[Dialog]) -> int:
    """Freeze a draft round and write its items (pairs, positions); returns the number of items."""
    found, config = load_config(store, round_)
    if found.status == "closed":
        # Starting must never look like it worked on a round that stays closed.
        raise RoundLocked(f"round {found.name!r} is closed; reopen it first (`arena round reopen {found.name}`)")
    if found.status != "draft":
        return len(store.round_items(found.id))
    items = build_items(config, dialogs, secret=found.secret)
    if not items:
        raise RoundError("the eval sets and filters select no turns")
    ids = {m.name: m.id for m in store.list_models()}
    if missing := sorted(set(config.models) - set(ids)):
        raise RoundError(f"model(s) never registered: {', '.join(missing)}")
    store.start_round(found.id, [
        RoundItemInput(it.key, n, it.eval_set, it.dialog_id, it.turn_index, ids[it.model_a], ids[it.model_b],
                       it.a_position) for n, it in enumerate(items)])
    return len(items)


def close_round(store: "Store", round_: int | str) -> None:
    """Stop judging a draft or running round; RoundLocked if it is already closed."""
    found, _ = load_config(store, round_)
    if found.status == "closed":
        raise RoundLocked(f"round {found.name!r} is already closed")
    store.close_round(found.id)


def reopen_round(store: "Store", round_: int | str) -> str:
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


def model_names(store: "Store") -> dict[int, str]:
    """Model names by store id."""
    return {m.id: m.name for m in store.list_models()}


def load_items(store: "Store", round_: int | str, names: Mapping[int, str] | None = None) -> list[Item]:
    """The stored items of a started round, with model names (``names``: from model_names, if already read)."""
    names = model_names(store) if names is None else names
    return [Item(r.item_key, r.eval_set, r.dialog_id, r.turn_index, names[r.model_a_id], names[r.model_b_id],
                 r.a_position) for r in store.round_items(round_)]


@dataclass
class Answers:
    """The round's stored answers by (eval_set, dialog_id, turn_index, model): generation id, failed."""

    by_key: dict[tuple[str, str, int, str], tuple[int, bool]]

    @classmethod
    def load(cls, store: "Store", round_id: int, names: Mapping[int, str] | None = None) -> "Answers":
        names = model_names(store) if names is None else names
        return cls({(g.eval_set, g.dialog_id, g.turn_index, names[g.model_id]): (g.id, g.failed)
                    for g in store.round_generations(round_id)})

    def get(self, item: Item, model: str) -> tuple[int, bool] | None:
        return self.by_key.get((*item.step_key, model))

    def ready(self, item: Item) -> bool:
        """Both answers stored and neither failed: only then can the item be judged."""
        a, b = self.get(item, item.model_a), self.get(item, item.model_b)
        return a is not None and b is not None and not a[1] and not b[1]

    def failed(self, item: Item) -> bool:
        return any(g is not None and g[1] for g in (self.get(item, item.model_a), self.get(item, item.model_b)))


@dataclass
class Assignment:
    """An item served to one annotator: server-side only (model names must not reach the browser)."""

    round_id: int
    item: Item
    left_generation: int
    right_generation: int

    @property
    def generation_a(self) -> int:
        return self.left_generation if self.item.a_position == "left" else self.right_generation

    @property
    def generation_b(self) -> int:
        return self.right_generation if self.item.a_position == "left" else self.left_generation


def _running_for(store: "Store", round_: int | str, annotator: str) -> tuple[Any, RoundConfig]:
    found, config = load_config(store, round_)
    if found.status != "running":
        raise RoundError(f"round {found.name!r} is {found.status}, not open for judging")
    if annotator not in config.annotators:
        raise RoundError(f"{annotator!r} is not an annotator of round {found.name!r}")
    return found, config


def rounds_for(store: "Store", annotator: str) -> list[str]:
    """Names of the running rounds this annotator may judge."""
    return [r.name for r in store.list_rounds()
            if r.status == "running" and annotator in (r.config or {}).get("annotators", [])]


@dataclass
class QueueView:
    """One read of a round's queue as one annotator sees it: their next item and their progress.

    The blind tab needs both on every request; reading the round's items, answers and judgements
    once instead of twice halves the work of the busiest call under load.
    """

    round_id: int
    annotator: str
    config: RoundConfig
    items: list[Item]
    answers: Answers
    counts: Counter[str]  # votes per item key
    mine: set[str]  # item keys this annotator voted on or skipped
    voted: int  # votes by this annotator

    def next(self) -> Assignment | None:
        """The next item for this annotator, or None when nothing is left for them."""
        ready = {it.key for it in self.items if self.answers.ready(it)}
        item = next_item(self.items, annotator=self.annotator, quota=self.config.judgements, seed=self.config.seed,
                         counts=self.counts, done=self.mine, ready=ready)
        if item is None:
            return None
        gen = {m: self.answers.get(item, m)[0] for m in (item.model_a, item.model_b)}  # type: ignore[index]
        return Assignment(self.round_id, item, gen[item.left_model], gen[item.right_model])

    def progress(self) -> tuple[int, int]:
        """(items this annotator voted on, judgeable items still open to them)."""
        open_ = sum(1 for it in self.items if it.key not in self.mine
                    and self.counts.get(it.key, 0) < self.config.judgements and self.answers.ready(it))
        return self.voted, open_


class RoundCache:
    """A started round's items and answers, kept once they can no longer change.

    Items are written once, when the round starts. Answers keep changing while pre-generation runs
    or retries failed ones, but once every item has both its answers and none failed, nothing writes
    them again (pre-generation keeps successful answers), so from then on the queue reads only
    votes and skips. One per server process: other processes writing votes do not matter to it.
    """

    def __init__(self) -> None:
        self._final: dict[int, tuple[list[Item], Answers]] = {}

    def items_and_answers(self, store: "Store", round_id: int) -> tuple[list[Item], Answers]:
        """The round's items and answers: from the cache when final, else read (and kept if now final)."""
        if (found := self._final.get(round_id)) is not None:
            return found
        names = model_names(store)
        items, answers = load_items(store, round_id, names), Answers.load(store, round_id, names)
        if items and all(answers.ready(it) for it in items):
            self._final[round_id] = (items, answers)
        return items, answers


def queue_view(store: "Store", round_: int | str, annotator: str, *, running: bool = True,
               cache: RoundCache | None = None) -> QueueView:
    """Read a round's queue for ``annotator``; with ``running`` the round must be open to them."""
    found, config = _running_for(store, round_, annotator) if running else load_config(store, round_)
    state = store.round_queue_state(found.id, annotator)
    items, answers = (cache or RoundCache()).items_and_answers(store, found.id)
    return QueueView(found.id, annotator, config, items, answers, Counter(state.counts), state.mine, state.voted)


def next_assignment(store: "Store", round_: int | str, annotator: str) -> Assignment | None:
    """The next item for this annotator in a running round, or None when nothing is left for them."""
    return queue_view(store, round_, annotator).next()


def submit_judgement(store: "Store", assignment: Assignment, annotator: str, screen: str,
                     left: RatingInput | None = None, right: RatingInput | None = None) -> bool:
    """Store the vote (and the answers' 1-5 ratings with it); False if this annotator already voted."""
    _running_for(store, assignment.round_id, annotator)
    choice = screen_to_choice(screen, assignment.item.a_position)
    ratings = [r for r in (left, right) if r is not None]
    expected = {assignment.left_generation, assignment.right_generation}
    if any(r.generation_id not in expected for r in ratings):
        raise RoundError("a rating names an answer that is not part of this item")
    return store.record_vote(round_id=assignment.round_id, item_key=assignment.item.key,
                             generation_a_id=assignment.generation_a, generation_b_id=assignment.generation_b,
                             a_position=assignment.item.a_position, annotator=annotator, choice=choice,
                             ratings=ratings)


def skip_item(store: "Store", assignment: Assignment, annotator: str, reason: str) -> bool:
    """Pass on an item with a reason; it is not served to this annotator again."""
    _running_for(store, assignment.round_id, annotator)
    return store.record_skip(round_id=assignment.round_id, item_key=assignment.item.key, annotator=annotator,
                             reason=reason.strip())


def annotator_progress(store: "Store", round_: int | str, annotator: str,
                       cache: RoundCache | None = None) -> tuple[int, int]:
    """(items this annotator voted on, judgeable items still open to them) in a round."""
    return queue_view(store, round_, annotator, running=False, cache=cache).progress()


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
        ]
        return "\n".join(lines)


def round_status(store: "Store", round_: int | str) -> RoundStatus:
    """Items done / total, answers stored, and vote counts per annotator and per model pair."""
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
    return out


def parse_weights(text: str) -> dict[str, float]:
    """``"model-a=2, model-b=0.5"`` -> {"model-a": 2.0, "model-b": 0.5} (CLI and UI input)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise RoundError(f"weight {part!r} is not MODEL=NUMBER")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise RoundError(f"weight {part!r}: {value!r} is not a number") from None
    return out


def split_list(text: str) -> list[str]:
    """Comma- or newline-separated names, blanks dropped."""
    return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
