"""Style-controlled Bradley-Terry: model strengths with answer length and markdown as covariates.

As FastChat's ``compute_style_control``: per battle and feature ``(x_a - x_b) / (x_a + x_b + 1)``,
standardised over the battles; one logistic fit of model strengths plus one coefficient per feature
(ties count half a win each way; L2 penalty on every parameter); percentile CIs from resampling battles.

Unlike FastChat, which refits every bootstrap replicate with scipy's L-BFGS, all replicates are fitted
together by batched Newton steps warm-started at the point fit. Battles are sorted by model pair once, so
the strength block of every gradient and Hessian is a per-pair sum (``np.add.reduceat``) and only the k
feature columns touch each battle. Input columns: ``model_a, model_b, winner`` and ``<f>_a, <f>_b`` per
feature ``f``; a battle missing a count is left out (and counted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena.stats.bootstrap import chunks, ci_rank, group_rng, percentile_ci
from arena.stats.pairwise import BothBad, _outcomes, _to_scale

STYLE_FEATURES = ("length", "headers", "lists", "bold")
# What a coefficient means, told as one contrast per feature: (feature counts of answer A, of answer B).
# Length is told as "twice as long" at 300 characters (a short Korean paragraph); the markdown
# contrasts are small counts typical of a formatted answer against a plain one.
EXAMPLES = {"length": (600, 300), "headers": (2, 0), "lists": (4, 0), "bold": (2, 0)}


@dataclass
class StyleDesign:
    """Battles as arrays, sorted by model pair: what every fit of one data set shares."""

    models: list[str]
    features: list[str]  # features with any variation; a constant one cannot be estimated
    constant: list[str]  # features left out because every battle had the same value
    a: np.ndarray  # model index of the battle's first model (a < b after canonical orientation)
    b: np.ndarray
    y: np.ndarray  # score of model a: 1, 0.5, 0
    z: np.ndarray  # (N, k) standardised features, signed for the canonical orientation
    mean: np.ndarray  # per feature, of the raw normalised difference (before orientation)
    std: np.ndarray
    starts: np.ndarray  # first battle of each present pair
    pair_i: np.ndarray  # model indexes of each present pair
    pair_j: np.ndarray
    dropped: int  # battles without style counts


def style_design(
    votes: pd.DataFrame, features: Sequence[str] = STYLE_FEATURES, both_bad: BothBad = "tie"
) -> StyleDesign:
    """Battles, normalised and standardised features, in pair order."""
    cols = [f"{f}_{side}" for f in features for side in ("a", "b")]
    if missing := [c for c in cols if c not in votes.columns]:
        raise ValueError(f"style control needs the columns {', '.join(missing)}")
    frame = votes.reset_index(drop=True)
    complete = frame[cols].notna().all(axis=1).to_numpy() if len(frame) else np.zeros(0, bool)
    kept = frame[complete]
    out = _outcomes(kept, both_bad)
    # _outcomes drops rows (self-battles, 'both bad' when dropped): take the same rows of the counts.
    keep = kept["model_a"].ne(kept["model_b"])
    if both_bad == "drop":
        keep &= kept["winner"].ne("both_bad")
    kept = kept[keep]
    xa = kept[[f"{f}_a" for f in features]].to_numpy(dtype=float)
    xb = kept[[f"{f}_b" for f in features]].to_numpy(dtype=float)
    raw = (xa - xb) / (xa + xb + 1.0)
    mean = raw.mean(axis=0) if len(raw) else np.zeros(len(features))
    std = raw.std(axis=0) if len(raw) else np.zeros(len(features))
    varies = std > 1e-12
    z = (raw[:, varies] - mean[varies]) / std[varies]

    models = sorted(set(out["model_a"]) | set(out["model_b"]))
    index = {m: k for k, m in enumerate(models)}
    a = out["model_a"].map(index).to_numpy(dtype=int)
    b = out["model_b"].map(index).to_numpy(dtype=int)
    y = out["score_a"].to_numpy(dtype=float)
    swap = a > b
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    y = np.where(swap, 1.0 - y, y)
    z = np.where(swap[:, None], -z, z)
    order = np.lexsort((b, a))
    a, b, y, z = a[order], b[order], y[order], z[order]
    pair = a * max(len(models), 1) + b
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, int)
    return StyleDesign(
        models=models,
        features=[f for f, v in zip(features, varies) if v],
        constant=[f for f, v in zip(features, varies) if not v],
        a=a,
        b=b,
        y=y,
        z=np.ascontiguousarray(z),
        mean=mean[varies],
        std=std[varies],
        starts=starts,
        pair_i=a[starts] if len(a) else np.zeros(0, int),
        pair_j=b[starts] if len(b) else np.zeros(0, int),
        dropped=int((~complete).sum()),
    )


def _fit(d: StyleDesign, w: np.ndarray, l2: float, start: np.ndarray | None = None, max_iter: int = 50) -> np.ndarray:
    """Penalised logistic fit of (strengths, coefficients) for each row of battle weights ``w`` (B, N)."""
    if l2 <= 0:
        raise ValueError("l2 must be > 0: without it a model that wins or loses every battle has no finite rating")
    n, k, n_rep = len(d.models), d.z.shape[1], w.shape[0]
    dim = n + k
    params = np.zeros((n_rep, dim)) if start is None else np.repeat(start[None, :], n_rep, axis=0)
    incidence = np.zeros((len(d.starts), n))  # pair -> +1 at its first model, -1 at its second
    incidence[np.arange(len(d.starts)), d.pair_i] = 1.0
    incidence[np.arange(len(d.starts)), d.pair_j] = -1.0
    zz = (d.z[:, :, None] * d.z[:, None, :]).reshape(len(d.y), k * k)
    eye = np.eye(dim)
    gauge = np.zeros((dim, dim))
    gauge[:n, :n] = 1.0 / n  # ratings are defined up to a shift; see pairwise._fit_bt
    rows = np.arange(n_rep)[:, None]
    for _ in range(max_iter):
        theta, beta = params[:, :n], params[:, n:]
        logit = theta[:, d.a] - theta[:, d.b] + beta @ d.z.T
        p = 0.5 * (1.0 + np.tanh(logit / 2.0))
        resid = w * (d.y - p)
        info = w * p * (1.0 - p)
        grad = np.empty((n_rep, dim))
        grad[:, :n] = np.add.reduceat(resid, d.starts, axis=1) @ incidence
        grad[:, n:] = resid @ d.z
        grad -= l2 * params
        pair_info = np.add.reduceat(info, d.starts, axis=1)  # (B, pairs)
        hess = np.zeros((n_rep, dim, dim))
        hess[rows, d.pair_i[None, :], d.pair_j[None, :]] = -pair_info
        hess[rows, d.pair_j[None, :], d.pair_i[None, :]] = -pair_info
        diag = pair_info @ np.abs(incidence)
        hess[:, np.arange(n), np.arange(n)] = diag
        if k:
            cross = np.stack([np.add.reduceat(info * d.z[:, f], d.starts, axis=1) @ incidence for f in range(k)], 2)
            hess[:, :n, n:] = cross
            hess[:, n:, :n] = cross.transpose(0, 2, 1)
            hess[:, n:, n:] = (info @ zz).reshape(n_rep, k, k)
        hess += l2 * eye + gauge
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)  # damping, as in pairwise._fit_bt
        params += step
        if np.abs(step).max() < 1e-10:
            break
    return params


@dataclass
class StyleControl:
    """Style-controlled ratings and what each style feature is worth."""

    ratings: pd.DataFrame  # model, rating, ci_low, ci_high, rank
    # feature, coef, ci_low, ci_high, example_a, example_b, example_win_share, example_ci_low, example_ci_high
    coefficients: pd.DataFrame
    n_battles: int
    dropped: int
    constant: list[str]


def _scale(
    d: StyleDesign, params: np.ndarray, w: np.ndarray, anchor_model: str | None, anchor_value: float
) -> np.ndarray:
    n = len(d.models)
    per_model = np.zeros((w.shape[0], n))
    np.add.at(per_model.T, d.a, w.T)
    np.add.at(per_model.T, d.b, w.T)
    return _to_scale(params[:, :n], per_model > 0, d.models, anchor_model, anchor_value)


def example_win_share(d: StyleDesign, feature: str, coef: float) -> float:
    """Win share of the answer with EXAMPLES[feature]'s counts against the other, between equal models."""
    k = d.features.index(feature)
    xa, xb = EXAMPLES[feature]
    z = ((xa - xb) / (xa + xb + 1.0) - d.mean[k]) / d.std[k]
    return float(1.0 / (1.0 + math.exp(-coef * z)))


def _shares(d: StyleDesign, coefs: np.ndarray) -> list[float]:
    # The share is monotone in the coefficient, so the coefficient's CI maps onto the share's CI.
    return [
        example_win_share(d, f, c) if f in EXAMPLES and not math.isnan(c) else math.nan
        for f, c in zip(d.features, coefs)
    ]


def style_control(
    votes: pd.DataFrame,
    *,
    features: Sequence[str] = STYLE_FEATURES,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    both_bad: BothBad = "tie",
    anchor_model: str | None = None,
    anchor_value: float = 1000.0,
    l2: float = 1e-3,
) -> StyleControl:
    """Style-controlled BT ratings (400-point scale) with bootstrap CIs, and the style coefficients.

    A coefficient is in log-odds per standard deviation of its standardised feature; ``example_win_share``
    turns it into how often the answer with more of it wins between equally rated models (0.5 = no effect).
    """
    d = style_design(votes, features, both_bad)
    n_battles = len(d.y)
    if not n_battles:  # no votes yet is a normal state for a new round, not an error
        point, ratings = np.zeros((1, len(d.features))), np.zeros(0)
    else:
        point = _fit(d, np.ones((1, n_battles)), l2)
        ratings = _scale(d, point, np.ones((1, n_battles)), anchor_model, anchor_value)[0]
    dim = len(d.models) + len(d.features)
    lo_r = hi_r = np.full(len(d.models), np.nan)
    lo_c = hi_c = np.full(len(d.features), np.nan)
    if n_boot > 0 and n_battles:
        rng = group_rng(seed, "style_control")
        scaled, coefs = [], []
        for size in chunks(n_boot, n_battles + dim * dim):
            w = rng.multinomial(n_battles, np.full(n_battles, 1.0 / n_battles), size=size).astype(float)
            fit = _fit(d, w, l2, start=point[0])
            scaled.append(_scale(d, fit, w, anchor_model, anchor_value))
            coefs.append(fit[:, len(d.models) :])
        lo_r, hi_r = percentile_ci(np.concatenate(scaled), ci)
        lo_c, hi_c = percentile_ci(np.concatenate(coefs), ci)
    table = pd.DataFrame(
        {
            "model": pd.Series(d.models, dtype=object),
            "rating": pd.Series(ratings, dtype=float),
            "ci_low": lo_r,
            "ci_high": hi_r,
        }
    )
    table["rank"] = ci_rank(table["ci_low"], table["ci_high"])
    table = table.sort_values(["rating", "model"], ascending=[False, True]).reset_index(drop=True)
    beta = point[0, len(d.models) :]
    coefficients = pd.DataFrame(
        {
            "feature": pd.Series(d.features, dtype=object),
            "coef": beta,
            "ci_low": lo_c,
            "ci_high": hi_c,
            "example_a": [EXAMPLES.get(f, (math.nan, math.nan))[0] for f in d.features],
            "example_b": [EXAMPLES.get(f, (math.nan, math.nan))[1] for f in d.features],
            "example_win_share": _shares(d, beta),
            "example_ci_low": _shares(d, lo_c),
            "example_ci_high": _shares(d, hi_c),
        }
    )
    return StyleControl(table, coefficients, n_battles, d.dropped, d.constant)
