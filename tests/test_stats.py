"""Leaderboard statistics: Bradley-Terry, bootstraps, agreement, position bias, metric aggregation, plots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena import stats
from arena.leaderboards import plots
from arena.stats import agreement

N_BOOT = 200  # enough for stable 95% bounds in these tests, cheap on two shared cores
TRUE = {
    "m0": 760.0,
    "m1": 835.0,
    "m2": 905.0,
    "m3": 965.0,
    "m4": 1035.0,
    "m5": 1095.0,
    "m6": 1165.0,
    "m7": 1240.0,
}  # mean 1000, so these are directly comparable with mean-anchored estimates


def simulate_votes(
    true: dict[str, float], n: int, seed: int, *, left_bias: float = 0.0, tie_share: float = 0.0
) -> pd.DataFrame:
    """Votes from a BT model; with prob. ``left_bias`` the left answer wins regardless of quality."""
    rng = np.random.default_rng(seed)
    models = np.array(list(true))
    r = np.array(list(true.values()))
    a = rng.integers(0, len(models), n)
    b = (a + rng.integers(1, len(models), n)) % len(models)
    p_a = 1.0 / (1.0 + 10.0 ** ((r[b] - r[a]) / 400.0))
    a_left = rng.random(n) < 0.5
    a_wins = rng.random(n) < p_a
    biased = rng.random(n) < left_bias
    a_wins = np.where(biased, a_left, a_wins)
    winner = np.where(a_wins, "model_a", "model_b")
    winner = np.where(rng.random(n) < tie_share, "tie", winner)
    return pd.DataFrame(
        {
            "round": 1,
            "item": np.arange(n),
            "model_a": models[a],
            "model_b": models[b],
            "left_model": np.where(a_left, models[a], models[b]),
            "winner": winner,
            "annotator": rng.choice(["kim", "lee", "park"], n),
        }
    )


@pytest.fixture(scope="module")
def votes() -> pd.DataFrame:
    return simulate_votes(TRUE, 20_000, seed=7)


@pytest.fixture(scope="module")
def board(votes: pd.DataFrame) -> pd.DataFrame:
    return stats.pairwise_leaderboard(votes, n_boot=N_BOOT, seed=0)


# ------------------------------------------------------------------------------------------ Bradley-Terry


def test_bt_recovers_known_strengths(board: pd.DataFrame) -> None:
    truth = board["model"].map(TRUE)
    inside = (board["ci_low"] <= truth) & (truth <= board["ci_high"])
    assert (~inside).sum() <= 1, board.assign(truth=truth)
    assert list(board["model"]) == sorted(TRUE, key=TRUE.get, reverse=True)
    assert (board["rating"] - truth).abs().max() < 25
    # 60-75 point gaps with ~10 point half-widths: every model is separated from the next one.
    assert list(board["rank"]) == list(range(1, 9))


def test_bt_point_estimate_is_the_likelihood_maximum(votes: pd.DataFrame) -> None:
    ratings = stats.bradley_terry(votes, l2=1e-12)
    theta = votes[["model_a", "model_b"]].apply(lambda c: c.map(ratings)).to_numpy() * math.log(10) / 400
    won = (votes["winner"] == "model_a").to_numpy(dtype=float)
    # Score equations of the plain per-vote logistic model: observed minus expected wins per model is zero.
    resid = won - 1.0 / (1.0 + np.exp(-(theta[:, 0] - theta[:, 1])))
    grad = pd.concat([pd.Series(resid, index=votes["model_a"]), pd.Series(-resid, index=votes["model_b"])])
    assert grad.groupby(level=0).sum().abs().max() < 1e-6


def test_ties_count_half_a_win_each_way() -> None:
    votes = pd.DataFrame({"model_a": ["a"] * 5, "model_b": ["b"] * 5, "winner": ["model_a"] * 3 + ["tie"] * 2})
    r = stats.bradley_terry(votes, l2=1e-9)
    # 3 wins + 2 half wins = 4 : 1, and the two-model MLE gap is 400 * log10(4 / 1).
    assert r["a"] - r["b"] == pytest.approx(400 * math.log10(4), abs=1e-3)


def test_symmetric_all_ties_give_equal_ratings() -> None:
    models = ["a", "b", "c", "d"]
    pairs = [(x, y) for x in models for y in models if x < y] * 5
    votes = pd.DataFrame({"model_a": [p[0] for p in pairs], "model_b": [p[1] for p in pairs], "winner": "tie"})
    board = stats.pairwise_leaderboard(votes, n_boot=50)
    assert np.allclose(board["rating"], 1000.0)
    assert (board["rank"] == 1).all()


def test_both_bad_as_tie_or_dropped_changes_counts() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["a", "a", "a", "b", "a"],
            "model_b": ["b", "b", "c", "c", "b"],
            "winner": ["model_a", "both_bad", "tie", "both_bad", "model_b"],
        }
    )
    as_tie = stats.pairwise_leaderboard(votes, n_boot=20, both_bad="tie").set_index("model")
    dropped = stats.pairwise_leaderboard(votes, n_boot=20, both_bad="drop").set_index("model")
    assert as_tie.loc[["a", "b", "c"], "n_battles"].tolist() == [4, 4, 2]
    assert dropped.loc[["a", "b", "c"], "n_battles"].tolist() == [3, 2, 1]
    assert as_tie.loc["b", "ties"] == 2 and dropped.loc["b", "ties"] == 0
    assert stats.battle_count_matrix(votes, both_bad="drop").loc["b", "c"] == 0
    assert stats.battle_count_matrix(votes, both_bad="tie").loc["b", "c"] == 1
    with pytest.raises(ValueError):
        stats.bradley_terry(votes, both_bad="ignore")  # type: ignore[arg-type]


def test_no_votes_yet_and_unbeaten_models() -> None:
    empty = pd.DataFrame(columns=["round", "item", "model_a", "model_b", "left_model", "winner", "annotator"])
    assert stats.pairwise_leaderboard(empty, n_boot=10).empty and stats.bradley_terry(empty) == {}
    # A model that won every battle has no finite MLE; the tiny penalty keeps it finite and on top.
    unbeaten = pd.DataFrame({"model_a": ["x"] * 5 + ["y"] * 5, "model_b": ["y"] * 5 + ["z"] * 5, "winner": "model_a"})
    board = stats.pairwise_leaderboard(unbeaten, n_boot=50)
    assert np.isfinite(board[["rating", "ci_low", "ci_high"]].to_numpy()).all()
    assert list(board["model"]) == ["x", "y", "z"] and board["wins"].tolist() == [5, 5, 0]


def test_unknown_winner_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown winner"):
        stats.bradley_terry(pd.DataFrame({"model_a": ["a"], "model_b": ["b"], "winner": ["left"]}))


def test_anchor_model_gets_exactly_the_anchor_value(votes: pd.DataFrame) -> None:
    free = stats.bradley_terry(votes)
    anchored = stats.bradley_terry(votes, anchor_model="m3", anchor_value=1114.0)
    assert anchored["m3"] == 1114.0
    assert np.mean(list(free.values())) == pytest.approx(1000.0)
    # Anchoring is a shift: every gap is unchanged.
    assert anchored["m7"] - anchored["m0"] == pytest.approx(free["m7"] - free["m0"], abs=1e-9)
    boot = stats.bt_bootstrap(votes, n_boot=20, anchor_model="m3", anchor_value=1114.0)
    assert (boot["m3"] == 1114.0).all()


def test_bootstrap_is_seeded(votes: pd.DataFrame) -> None:
    one = stats.bt_bootstrap(votes, n_boot=20, seed=3)
    assert one.equals(stats.bt_bootstrap(votes, n_boot=20, seed=3))
    assert not one.equals(stats.bt_bootstrap(votes, n_boot=20, seed=4))


def test_online_elo_depends_on_order_but_bt_does_not(votes: pd.DataFrame) -> None:
    shuffled = votes.sample(frac=1.0, random_state=1)
    elo, elo_shuffled = stats.online_elo(votes), stats.online_elo(shuffled)
    assert max(abs(elo[m] - elo_shuffled[m]) for m in elo) > 1.0
    bt, bt_shuffled = stats.bradley_terry(votes), stats.bradley_terry(shuffled)
    assert max(abs(bt[m] - bt_shuffled[m]) for m in bt) < 1e-6


def test_win_rate_and_battle_count_matrices(votes: pd.DataFrame) -> None:
    rate = stats.win_rate_matrix(votes)
    count = stats.battle_count_matrix(votes, order=rate.index)
    assert list(rate.index) == sorted(TRUE, key=TRUE.get, reverse=True)  # strongest first
    assert np.allclose((rate + rate.T).to_numpy()[~np.eye(8, dtype=bool)], 1.0)
    assert np.isnan(np.diag(rate.to_numpy())).all()
    assert (count.to_numpy() == count.to_numpy().T).all() and count.to_numpy().sum() == 2 * len(votes)
    pair = votes[(votes["model_a"] == "m7") & (votes["model_b"] == "m0")]
    assert count.loc["m7", "m0"] == len(pair) + len(votes[(votes["model_a"] == "m0") & (votes["model_b"] == "m7")])
    expected = stats.expected_win_matrix(stats.bradley_terry(votes))
    assert (expected.loc[rate.index, rate.columns] - rate).abs().max().max() < 0.05


# ------------------------------------------------------------------------------------------- mean scores


def simulate_ratings(
    n_dialogs: int, turns: int, seed: int, *, within_sd: float = 1.0, dialog_sd: float = 0.0, mean: float = 3.5
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dialog_effect = rng.normal(0.0, dialog_sd, n_dialogs)
    rows = [
        {
            "model": "m",
            "eval_set": "s",
            "category": "chat",
            "round": 1,
            "dialog_id": f"d{d}",
            "turn_index": t,
            "annotator": "kim",
            "score": mean + dialog_effect[d] + rng.normal(0.0, within_sd),
        }
        for d in range(n_dialogs)
        for t in range(turns)
    ]
    return pd.DataFrame(rows)


def test_score_ci_contains_true_mean_and_narrows_with_more_data() -> None:
    small = stats.score_leaderboard(simulate_ratings(30, 3, seed=1), n_boot=N_BOOT).iloc[0]
    large = stats.score_leaderboard(simulate_ratings(600, 3, seed=2), n_boot=N_BOOT).iloc[0]
    for row in (small, large):
        assert row["ci_low"] < 3.5 < row["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < 0.5 * (small["ci_high"] - small["ci_low"])
    assert small["n"] == 90 and small["n_dialogs"] == 30


def test_bootstrap_resamples_dialogs_not_turns() -> None:
    # Every turn of a dialog has the same score: 200 turns carry only 40 dialogs' worth of information.
    ratings = simulate_ratings(40, 5, seed=3, within_sd=0.0, dialog_sd=1.0)
    clustered = stats.score_leaderboard(ratings, n_boot=N_BOOT).iloc[0]
    naive = stats.score_leaderboard(ratings, n_boot=N_BOOT, cluster=None).iloc[0]
    assert clustered["mean"] == pytest.approx(naive["mean"])
    # sqrt(5) ~ 2.2 times wider in theory.
    assert clustered["ci_high"] - clustered["ci_low"] > 1.7 * (naive["ci_high"] - naive["ci_low"])


def test_score_leaderboard_groups_and_ranks() -> None:
    a = simulate_ratings(100, 2, seed=4, mean=4.2).assign(model="good")
    b = simulate_ratings(100, 2, seed=5, mean=2.1).assign(model="bad")
    c = simulate_ratings(100, 2, seed=6, mean=4.15).assign(model="good2")
    both = pd.concat([a, b, c, a.assign(eval_set="t"), b.assign(eval_set="t")])
    board = stats.score_leaderboard(both, by=("eval_set", "model"), n_boot=N_BOOT)
    s = board[board["eval_set"] == "s"].set_index("model")
    assert list(s.index) == ["good", "good2", "bad"]
    assert s.loc["good", "rank"] == 1 and s.loc["good2", "rank"] == 1 and s.loc["bad", "rank"] == 3
    assert board[board["eval_set"] == "t"]["rank"].tolist() == [1, 2]
    again = stats.score_leaderboard(both, by=("eval_set", "model"), n_boot=N_BOOT)
    pd.testing.assert_frame_equal(board, again)


# --------------------------------------------------------------------------------- Krippendorff's alpha

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example with missing data:
# 4 observers x 12 units; unit 12 has one value and is unpairable. Published: nominal .743,
# ordinal .815, interval .849.
RELIABILITY = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def reliability_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"unit": u, "annotator": f"obs{c}", "value": v}
            for c, row in enumerate(RELIABILITY)
            for u, v in enumerate(row)
            if v is not None
        ]
    )


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_textbook_example(metric: str, published: float) -> None:
    assert round(agreement.krippendorff_alpha(reliability_frame(), metric=metric), 3) == published


def test_krippendorff_small_hand_computed_and_perfect() -> None:
    # Units (A,A), (A,B), (B,B): coincidences o_AA=2, o_AB=o_BA=1, o_BB=2; n_A = n_B = 3, n = 6.
    # D_o = 2/6, D_e = 2*3*3/(6*5) = 0.6, alpha = 1 - (1/3)/0.6 = 4/9.
    small = pd.DataFrame({"unit": [1, 1, 2, 2, 3, 3], "value": list("AAABBB")})
    assert agreement.krippendorff_alpha(small) == pytest.approx(4 / 9)
    perfect = pd.DataFrame({"unit": [1, 1, 2, 2, 3, 3, 4], "value": [1, 1, 5, 5, 3, 3, 2]})
    assert agreement.krippendorff_alpha(perfect, metric="interval") == 1.0
    assert math.isnan(agreement.krippendorff_alpha(pd.DataFrame({"unit": [1, 1], "value": [2, 2]})))


def test_rating_and_vote_agreement_wrappers() -> None:
    ratings = (
        reliability_frame()
        .rename(columns={"value": "score", "unit": "turn_index"})
        .assign(model="m", eval_set="s", dialog_id="d")
    )
    result = agreement.rating_agreement(ratings)
    assert round(result["alpha"], 3) == 0.849 and result["n_units"] == 11 and result["n_annotators"] == 4
    # Annotator lee saw the pair with model_a/model_b swapped but chose the same model: full agreement.
    votes = pd.DataFrame(
        {
            "round": 1,
            "item": [1, 1, 2, 2],
            "annotator": ["kim", "lee", "kim", "lee"],
            "model_a": ["x", "y", "x", "x"],
            "model_b": ["y", "x", "y", "y"],
            "winner": ["model_a", "model_b", "tie", "tie"],
        }
    )
    assert agreement.vote_agreement(votes)["alpha"] == 1.0
    disagree = votes.assign(winner=["model_a", "model_a", "tie", "both_bad"])
    # Values {x, y} and {tie, both_bad}: every pair disagrees, D_o = 1; four distinct values, D_e = 12/12.
    assert agreement.vote_agreement(disagree)["alpha"] == pytest.approx(0.0)
    # both_bad as tie: {x, y}, {tie, tie}: D_o = 2/4, D_e = (2*1*1 + 2*1*2 + 2*1*2) / (4*3) = 10/12, alpha = 0.4.
    assert agreement.vote_agreement(disagree, both_bad="tie")["alpha"] == pytest.approx(0.4)


# ------------------------------------------------------------------------------ position bias, annotators


def test_position_bias_ci() -> None:
    fair = agreement.position_bias(simulate_votes(TRUE, 3000, seed=11)).iloc[0]
    assert fair["ci_low"] < 0.5 < fair["ci_high"]
    biased = agreement.position_bias(simulate_votes(TRUE, 3000, seed=12, left_bias=0.3)).iloc[0]
    assert biased["ci_low"] > 0.55  # expected share 0.5 + 0.3 / 2 = 0.65
    per_annotator = agreement.position_bias(simulate_votes(TRUE, 3000, seed=11, tie_share=0.1), by=["annotator"])
    assert list(per_annotator["annotator"]) == ["kim", "lee", "park"]
    assert (per_annotator["n_decisive"] < per_annotator["n_votes"]).all()


def test_annotator_summary_counts() -> None:
    votes = pd.DataFrame(
        {
            "annotator": ["kim", "kim", "lee"],
            "model_a": ["x", "x", "x"],
            "model_b": "y",
            "left_model": ["x", "y", "x"],
            "winner": ["model_a", "tie", "model_b"],
        }
    )
    ratings = pd.DataFrame({"annotator": ["lee", "lee", "choi"], "score": [4, 5, 3]})
    s = agreement.annotator_summary(votes, ratings).set_index("annotator")
    assert s.loc["kim", ["n_votes", "decisive", "ties", "both_bad"]].tolist() == [2, 1, 1, 0]
    assert s.loc["kim", "left_share"] == 1.0 and s.loc["lee", "left_share"] == 0.0
    assert s.loc["lee", "n_ratings"] == 2 and s.loc["lee", "mean_score"] == 4.5
    assert s.loc["choi", "n_votes"] == 0


# ------------------------------------------------------------------------------------ automatic metrics


def test_metric_summary_pools_speed_and_skips_missing() -> None:
    gen = pd.DataFrame(
        {
            "model": "m",
            "eval_set": "s",
            "dialog_id": ["d1", "d1", "d2", "d3"],
            "turn_index": [1, 3, 1, 1],
            "similarity": [0.5, 1.0, 0.0, None],
            "tool_name_match": [True, None, False, None],
            "tool_args_match": [False, None, False, None],
            "repetition": [0.0, 0.8, 0.1, 0.1],
            "text": ["abc", "abcdefg", "", None],
            "ttft_ms": [100.0, 200.0, 300.0, 400.0],
            "total_ms": [600.0, 1100.0, 500.0, 900.0],
            "tokens": [100, 200, 50, 0],
            "tokens_per_s": [200.0, 200.0, 100.0, None],
        }
    )
    s = stats.metric_summary(gen, n_boot=N_BOOT).set_index("metric")
    assert s.loc["similarity", "value"] == pytest.approx(0.5) and s.loc["similarity", "n"] == 3
    assert s.loc["tool_name_match", "value"] == 0.5 and s.loc["tool_name_match", "n"] == 2
    assert s.loc["tool_args_match", "value"] == 0.0
    assert s.loc["answer_chars", "value"] == pytest.approx(10 / 3)
    # Decode time from the per-answer rate: 0.5 s + 1 s + 0.5 s for 350 tokens; the 0-token answer is skipped.
    assert s.loc["tokens_per_s", "value"] == pytest.approx(175.0)
    assert s.loc["ms_per_token", "value"] == pytest.approx(1000.0 / 175.0)
    assert s.loc["ttft_ms", "n_dialogs"] == 3
    assert (s["ci_low"].dropna() <= s.loc[s["ci_low"].notna(), "value"] + 1e-12).all()
    assert "repeats_earlier_turn" not in s.index


# ------------------------------------------------------------------------------------------------- plots


def test_plots_draw_the_frames(board: pd.DataFrame, votes: pd.DataFrame) -> None:
    fig = plots.rating_ci_figure(board)
    points = fig.data[0]
    assert list(points.x) == list(board["model"])
    assert np.allclose(np.array(points.y) + np.array(points.error_y.array), board["ci_high"])
    assert np.allclose(np.array(points.y) - np.array(points.error_y.arrayminus), board["ci_low"])
    assert fig.data[1].name == plots.ONLINE_ELO_LABEL
    rate = stats.win_rate_matrix(votes)
    heat = plots.win_rate_heatmap(rate)
    assert np.allclose(np.array(heat.data[0].z, dtype=float), rate.to_numpy(), equal_nan=True)
    assert heat.data[0].text[0][0] == ""  # diagonal left blank
    counts = plots.battle_count_heatmap(stats.battle_count_matrix(votes, order=rate.index))
    assert list(counts.data[0].y) == list(rate.index)
    gen = pd.DataFrame({"model": ["a", "a", "b"], "dialog_id": ["d1", "d2", "d1"], "similarity": [0.2, 0.4, 0.9]})
    metric_fig = plots.metric_ci_figure(stats.metric_summary(gen, n_boot=20), "similarity")
    assert list(metric_fig.data[0].x) == ["b", "a"]
