"""Style control: style counts of answers, and style-controlled Bradley-Terry against an independent fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from arena import stats
from arena.core.style import style_counts
from arena.stats.style import STYLE_FEATURES, style_control

L2 = 1e-3


def test_style_counts_on_korean_markdown() -> None:
    text = "# 제목\n\n## 부제\n1. 첫째\n2. **둘째**\n  - 하위 항목\n* 별표 항목\n__강조__ 와 **굵게**\n```\n# 코드\n- 코드\n```"
    c = style_counts(text)
    assert c.headers == 2  # the '# 코드' inside the fence does not count
    assert c.lists == 4  # 1. 2. - * (the fenced '- 코드' does not count)
    assert c.bold == 3
    assert c.length == sum(1 for ch in text if not ch.isspace())
    assert style_counts("#해시태그 아님") == (7, 0, 0, 0)  # a header needs the space after '#'
    assert style_counts(None) == (0, 0, 0, 0)


def battles(n_models: int, n: int, seed: int, *, length_coef: float, tie_share: float = 0.0, long_models=()):
    """Battles from BT strengths plus a planted effect of the normalised length difference."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(-150, 150, n_models)  # 400-point scale
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    long_ = np.isin(np.arange(n_models), list(long_models))
    la = rng.integers(100, 400, n) * np.where(long_[a], 3, 1)
    lb = rng.integers(100, 400, n) * np.where(long_[b], 3, 1)
    ha, hb = rng.poisson(1.0, n), rng.poisson(1.0, n)
    logit = (strength[a] - strength[b]) * math.log(10) / 400 + length_coef * (la - lb) / (la + lb + 1)
    winner = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "model_a", "model_b")
    winner = np.where(rng.random(n) < tie_share, "tie", winner)
    names = np.array([f"m{k}" for k in range(n_models)])
    frame = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})
    for f, (xa, xb) in {"length": (la, lb), "headers": (ha, hb)}.items():
        frame[f"{f}_a"], frame[f"{f}_b"] = xa, xb
    for f in ("lists", "bold"):
        frame[f"{f}_a"] = rng.poisson(0.5, n)
        frame[f"{f}_b"] = rng.poisson(0.5, n)
    return frame, dict(zip(names, strength))


def reference_fit(votes: pd.DataFrame) -> tuple[dict[str, float], np.ndarray]:
    """The same model written out plainly: one row per battle, scipy L-BFGS on the penalised log loss."""
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    x = np.zeros((len(votes), len(models)))
    rows = np.arange(len(votes))
    x[rows, votes["model_a"].map(models.index)] = 1.0
    x[rows, votes["model_b"].map(models.index)] = -1.0
    feats = []
    for f in STYLE_FEATURES:
        xa, xb = votes[f"{f}_a"].to_numpy(float), votes[f"{f}_b"].to_numpy(float)
        d = (xa - xb) / (xa + xb + 1)
        feats.append((d - d.mean()) / d.std())
    design = np.hstack([x, np.column_stack(feats)])
    y = votes["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}).to_numpy()

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ p
        value = np.sum(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)) + L2 / 2 * p @ p
        return value, design.T @ (1 / (1 + np.exp(-z)) - y) + L2 * p

    p = minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "maxiter": 500}).x
    r = p[: len(models)] * 400 / math.log(10)
    return dict(zip(models, r - r.mean() + 1000)), p[len(models) :]


def test_style_control_matches_an_independent_scipy_fit() -> None:
    votes, _ = battles(6, 4000, seed=3, length_coef=1.5, tie_share=0.1)
    ours = style_control(votes, n_boot=0, l2=L2)
    ref_ratings, ref_coefs = reference_fit(votes)
    got = dict(zip(ours.ratings["model"], ours.ratings["rating"]))
    assert max(abs(got[m] - ref_ratings[m]) for m in ref_ratings) < 0.5
    np.testing.assert_allclose(ours.coefficients["coef"].to_numpy(), ref_coefs, atol=1e-3)


def test_a_planted_length_effect_is_recovered_and_removed_from_the_ranking() -> None:
    # m0 is the weakest model but answers three times as long; length sways the votes.
    votes, strength = battles(5, 6000, seed=7, length_coef=3.0, long_models=[0])
    raw = stats.pairwise_leaderboard(votes, n_boot=0)
    controlled = style_control(votes, n_boot=200, seed=1)
    coef = controlled.coefficients.set_index("feature")
    d = (votes["length_a"] - votes["length_b"]) / (votes["length_a"] + votes["length_b"] + 1)
    planted = 3.0 * d.std()  # log-odds per standard deviation of the standardised feature
    assert coef.loc["length", "ci_low"] <= planted <= coef.loc["length", "ci_high"]
    assert abs(coef.loc["length", "coef"] - planted) < 0.15 * planted
    assert coef.loc["length", "example_win_share"] > 0.6  # "twice as long wins > 60% between equals"
    for f in ("headers", "lists", "bold"):  # no planted effect: within ~3 standard errors (0.03) of zero
        assert abs(coef.loc[f, "coef"]) < 0.1, f
    # Without control the long weak model climbs; with it, it is last again, as its strength says.
    assert raw["model"].iloc[-1] != "m0"
    assert controlled.ratings["model"].iloc[-1] == "m0"
    got = dict(zip(controlled.ratings["model"], controlled.ratings["rating"]))
    true = {m: s + 1000 for m, s in strength.items()}
    assert max(abs(got[m] - true[m]) for m in true) < 25


def test_style_control_edge_cases() -> None:
    votes, _ = battles(3, 300, seed=1, length_coef=0.0)
    votes["bold_a"] = votes["bold_b"] = 0  # never any bold: nothing to estimate
    votes.loc[:9, "length_a"] = np.nan  # answers without counts are left out, and counted
    out = style_control(votes, n_boot=50)
    assert out.constant == ["bold"] and "bold" not in set(out.coefficients["feature"])
    assert out.dropped == 10 and out.n_battles == 290
    assert out.ratings["ci_low"].le(out.ratings["rating"]).all()
    empty = style_control(votes.iloc[:0], n_boot=10)
    assert empty.ratings.empty and empty.n_battles == 0
    with pytest.raises(ValueError, match="length_a"):
        style_control(votes.drop(columns=["length_a"]))
