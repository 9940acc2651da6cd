"""Leaderboard statistics as pure functions: DataFrames in, DataFrames or dicts out (no store, no I/O).

Input frames (extra columns are ignored; arena.leaderboards maps the store's tables onto these names):

``ratings``      one row per human 1-5 score of one assistant answer:
                 model, dialog_id, eval_set, category, round, turn_index, annotator, score
``votes``        one row per blind A/B judgement, in the order they were cast (only online Elo cares):
                 round, item, model_a, model_b, left_model, winner, annotator;
                 winner in {"model_a", "model_b", "tie", "both_bad"}; left_model equals model_a or model_b
``generations``  one row per stored answer, per-response values computed by arena.core.metrics
                 (NaN/None where a metric does not apply, e.g. tool matches on plain-text turns):
                 model, dialog_id, turn_index, similarity, tool_name_match, tool_args_match, repetition,
                 [repeats_earlier_turn], text, ttft_ms, total_ms, tokens, tokens_per_s

Modules: ``scores`` (mean 1-5 and metrics with cluster-bootstrap CIs), ``pairwise`` (Bradley-Terry,
online Elo, win matrices), ``agreement`` (Krippendorff's alpha, position bias, per-annotator counts),
``bootstrap`` (the one percentile bootstrap and its seeding rule). Ratings use the 400-point Elo scale:
a 400-point gap means 10:1 odds of winning. The names below are the package's public API.
"""

from arena.stats.bootstrap import ci_rank, group_rng, percentile_ci
from arena.stats.pairwise import (
    ELO_SCALE,
    WINNERS,
    BothBad,
    battle_count_matrix,
    bradley_terry,
    bt_bootstrap,
    expected_win_matrix,
    online_elo,
    pairwise_leaderboard,
    win_rate_matrix,
)
from arena.stats.scores import metric_summary, score_leaderboard

__all__ = [
    "ELO_SCALE",
    "WINNERS",
    "BothBad",
    "battle_count_matrix",
    "bradley_terry",
    "bt_bootstrap",
    "ci_rank",
    "expected_win_matrix",
    "group_rng",
    "metric_summary",
    "online_elo",
    "pairwise_leaderboard",
    "percentile_ci",
    "score_leaderboard",
    "win_rate_matrix",
]
