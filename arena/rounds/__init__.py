"""Blind A/B rounds without Gradio: config, items (pairs and shown positions), queues, judgements, status.

A round is created as a draft from a :class:`RoundConfig`; starting it freezes the config and writes
its items (one per replay turn and model pair, with the screen side of answer A drawn from the round's
secret) to the store. Pre-generation (:mod:`arena.rounds.pregen`) then stores one answer per model and
turn, and annotators judge those stored answers: the queue serves each annotator items that still need
judgements, least-judged first, never one they have voted on or skipped.

Votes are stored in terms of the item's canonical pair (``model_a`` is the one listed first in the
config): ``choice`` ``a`` means model_a's answer won, whichever side of the screen it was on.

Modules: ``config`` (the round YAML), ``pairing`` (items and sides), ``queue`` (what each annotator
judges next), ``workflow`` (create/start/close/reopen/status), ``pregen`` (answers before the round
opens), ``export`` (votes out). The names below are the package's public API.
"""

from arena.rounds.config import SCREEN_CHOICES, RoundConfig, RoundError, parse_weights, split_list
from arena.rounds.pairing import Item, all_pairs, build_items, choose_pairs, count_items, screen_to_choice, select_steps
from arena.rounds.queue import (
    Assignment,
    QueueView,
    RoundCache,
    active_next_item,
    annotator_progress,
    next_assignment,
    next_item,
    queue_view,
    rounds_for,
    skip_item,
    submit_judgement,
)
from arena.rounds.workflow import (
    ROUND_ACTIONS,
    Answers,
    RoundStatus,
    allowed_actions,
    close_round,
    create_round,
    load_config,
    load_items,
    model_names,
    reopen_round,
    round_status,
    start_round,
)

__all__ = [
    "all_pairs",
    "allowed_actions",
    "annotator_progress",
    "Answers",
    "Assignment",
    "build_items",
    "choose_pairs",
    "close_round",
    "count_items",
    "create_round",
    "Item",
    "load_config",
    "load_items",
    "model_names",
    "next_assignment",
    "active_next_item",
    "next_item",
    "parse_weights",
    "queue_view",
    "QueueView",
    "reopen_round",
    "ROUND_ACTIONS",
    "round_status",
    "RoundCache",
    "RoundConfig",
    "RoundError",
    "rounds_for",
    "RoundStatus",
    "SCREEN_CHOICES",
    "screen_to_choice",
    "select_steps",
    "skip_item",
    "split_list",
    "start_round",
    "submit_judgement",
]
