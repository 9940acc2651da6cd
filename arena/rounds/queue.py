"""What each annotator judges next: least-judged items first, quotas, skips, and storing a judgement."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arena.rounds.config import RoundConfig, RoundError
from arena.rounds.pairing import Item, screen_to_choice
from arena.rounds.workflow import Answers, load_config, load_items, model_names
from arena.stats.active import Estimate, pair_priorities, win_matrix
from arena.store import RatingInput, round_state_error

if TYPE_CHECKING:
    from arena.store import Store


# ------------------------------------------------------------------------------------------ queue


def _tiebreak(seed: int, annotator: str, key: str) -> str:
    # Stable and different per annotator, so people judging at once rarely get the same item.
    return hashlib.sha256(f"{seed}\x00{annotator}\x00{key}".encode()).hexdigest()


def next_item(
    items: Iterable[Item],
    *,
    annotator: str,
    quota: int,
    seed: int,
    counts: Mapping[str, int],
    done: set[str],
    ready: set[str],
) -> Item | None:
    """The item to serve next: ready, not yet judged or skipped by this annotator, under quota;
    the least-judged first so that items reach their quota evenly."""
    candidates = [it for it in items if it.key in ready and it.key not in done and counts.get(it.key, 0) < quota]
    if not candidates:
        return None
    return min(candidates, key=lambda it: (counts.get(it.key, 0), _tiebreak(seed, annotator, it.key)))


# Score of the item's model A for each choice; 'both bad' counts as a tie, as the leaderboard's default.
SCORE_OF_CHOICE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


def pair_outcomes(
    items: Iterable[Item], choices: Mapping[str, Mapping[str, int]]
) -> dict[tuple[str, str], tuple[float, int]]:
    """Votes so far per model pair as {(model_a, model_b): (score of model_a, votes)}, pairs named in order."""
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for it in items:
        got = choices.get(it.key)
        if not got:
            continue
        score = sum(SCORE_OF_CHOICE.get(c, 0.5) * n for c, n in got.items())
        votes = sum(got.values())
        a, b = sorted((it.model_a, it.model_b))
        if a != it.model_a:
            score = votes - score
        prev = out.get((a, b), (0.0, 0))
        out[(a, b)] = (prev[0] + score, prev[1] + votes)
    return out


def active_next_item(
    items: list[Item],
    *,
    models: list[str],
    annotator: str,
    quota: int,
    seed: int,
    counts: Mapping[str, int],
    choices: Mapping[str, Mapping[str, int]],
    done: set[str],
    ready: set[str],
    min_pair_votes: int = 2,
) -> Item | None:
    """Active sampling: among the items this annotator may get (as next_item), one of the pair whose next
    vote most reduces the uncertainty of the ranking (arena.stats.active); within the pair the least-judged."""
    candidates = [it for it in items if it.key in ready and it.key not in done and counts.get(it.key, 0) < quota]
    if not candidates:
        return None
    outcomes = pair_outcomes(items, choices)
    estimate = Estimate.fit(models, win_matrix(models, outcomes))
    priority = pair_priorities(estimate, min_pair_votes=min_pair_votes)

    def rank(it: Item) -> tuple[float, int, str]:
        pair = tuple(sorted((it.model_a, it.model_b)))
        return (-priority.get(pair, 0.0), counts.get(it.key, 0), _tiebreak(seed, annotator, it.key))

    return min(candidates, key=rank)


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


def _running_for(store: Store, round_: int | str, annotator: str) -> tuple[Any, RoundConfig]:
    found, config = load_config(store, round_)
    if found.status != "running":
        raise round_state_error(RoundError, found, f"is {found.status}, not open for judging")
    if annotator not in config.annotators:
        raise RoundError(
            f"{annotator!r} is not an annotator of round {found.name!r}", code="not_judge", name=found.name
        )
    return found, config


def rounds_for(store: Store, annotator: str) -> list[str]:
    """Names of the running rounds this annotator may judge."""
    return [
        r.name
        for r in store.list_rounds()
        if r.status == "running" and annotator in (r.config or {}).get("annotators", [])
    ]


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
    choices: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # votes per item key and choice

    def next(self) -> Assignment | None:
        """The next item for this annotator, or None when nothing is left for them."""
        ready = {it.key for it in self.items if self.answers.ready(it)}
        common = {
            "annotator": self.annotator,
            "quota": self.config.judgements,
            "seed": self.config.seed,
            "counts": self.counts,
            "done": self.mine,
            "ready": ready,
        }
        if self.config.sampling == "active":
            item = active_next_item(
                self.items,
                models=list(self.config.models),
                choices=self.choices,
                min_pair_votes=self.config.min_pair_votes,
                **common,
            )
        else:
            item = next_item(self.items, **common)
        if item is None:
            return None
        gen = {m: self.answers.get(item, m)[0] for m in (item.model_a, item.model_b)}  # type: ignore[index]
        return Assignment(self.round_id, item, gen[item.left_model], gen[item.right_model])

    def progress(self) -> tuple[int, int]:
        """(items this annotator voted on, judgeable items still open to them)."""
        open_ = sum(
            1
            for it in self.items
            if it.key not in self.mine
            and self.counts.get(it.key, 0) < self.config.judgements
            and self.answers.ready(it)
        )
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

    def items_and_answers(self, store: Store, round_id: int) -> tuple[list[Item], Answers]:
        """The round's items and answers: from the cache when final, else read (and kept if now final)."""
        if (found := self._final.get(round_id)) is not None:
            return found
        names = model_names(store)
        items, answers = load_items(store, round_id, names), Answers.load(store, round_id, names)
        if items and all(answers.ready(it) for it in items):
            self._final[round_id] = (items, answers)
        return items, answers


def queue_view(
    store: Store, round_: int | str, annotator: str, *, running: bool = True, cache: RoundCache | None = None
) -> QueueView:
    """Read a round's queue for ``annotator``; with ``running`` the round must be open to them."""
    found, config = _running_for(store, round_, annotator) if running else load_config(store, round_)
    state = store.round_queue_state(found.id, annotator)
    items, answers = (cache or RoundCache()).items_and_answers(store, found.id)
    return QueueView(
        found.id, annotator, config, items, answers, Counter(state.counts), state.mine, state.voted, state.choices
    )


def next_assignment(store: Store, round_: int | str, annotator: str) -> Assignment | None:
    """The next item for this annotator in a running round, or None when nothing is left for them."""
    return queue_view(store, round_, annotator).next()


def submit_judgement(
    store: Store,
    assignment: Assignment,
    annotator: str,
    screen: str,
    left: RatingInput | None = None,
    right: RatingInput | None = None,
) -> bool:
    """Store the vote (and the answers' 1-5 ratings with it); False if this annotator already voted."""
    _running_for(store, assignment.round_id, annotator)
    choice = screen_to_choice(screen, assignment.item.a_position)
    ratings = [r for r in (left, right) if r is not None]
    expected = {assignment.left_generation, assignment.right_generation}
    if any(r.generation_id not in expected for r in ratings):
        raise RoundError("a rating names an answer that is not part of this item", code="bad_vote")
    return store.record_vote(
        round_id=assignment.round_id,
        item_key=assignment.item.key,
        generation_a_id=assignment.generation_a,
        generation_b_id=assignment.generation_b,
        a_position=assignment.item.a_position,
        annotator=annotator,
        choice=choice,
        ratings=ratings,
    )


def skip_item(store: Store, assignment: Assignment, annotator: str, reason: str) -> bool:
    """Pass on an item with a reason; it is not served to this annotator again."""
    _running_for(store, assignment.round_id, annotator)
    return store.record_skip(
        round_id=assignment.round_id, item_key=assignment.item.key, annotator=annotator, reason=reason.strip()
    )


def annotator_progress(
    store: Store, round_: int | str, annotator: str, cache: RoundCache | None = None
) -> tuple[int, int]:
    """(items this annotator voted on, judgeable items still open to them) in a round."""
    return queue_view(store, round_, annotator, running=False, cache=cache).progress()
