"""Rater diagnostics as pure functions: Krippendorff's alpha, left/right position bias, per-annotator counts.

Input frames are the ``ratings`` and ``votes`` frames documented in arena.stats. Columns read:

- ``krippendorff_alpha(judgements)``: the ``unit`` columns and ``value`` (long format, one row per value)
- ``rating_agreement(ratings)``: the ``unit`` columns present, annotator, score
- ``vote_agreement(votes)``: the ``unit`` columns, annotator, model_a, model_b, winner
- ``position_bias(votes)``: model_a, model_b, left_model, winner (+ the ``by`` columns)
- ``annotator_summary(votes, ratings)``: annotator, winner, left_model, model_a, model_b, item; ratings: annotator, score
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd

from arena.stats.bootstrap import chunks, group_rng, percentile_ci

Metric = Literal["nominal", "ordinal", "interval"]


# ----------------------------------------------------------------------------------- Krippendorff's alpha


def _delta2(categories: np.ndarray, marginals: np.ndarray, metric: Metric) -> np.ndarray:
    """Squared distance between every pair of categories (Krippendorff 2011, section on difference functions)."""
    if metric == "nominal":
        return 1.0 - np.eye(len(categories))
    if metric == "interval":
        v = categories.astype(float)
        return (v[:, None] - v[None, :]) ** 2
    if metric == "ordinal":
        # Distance = marginal mass between the two ranks, counting each endpoint half.
        cum = np.cumsum(marginals)
        rank = np.arange(len(cum))
        lo, hi = np.minimum.outer(rank, rank), np.maximum.outer(rank, rank)
        between = cum[hi] - cum[lo] + marginals[lo]
        return (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2
    raise ValueError(f"unknown metric {metric!r}; expected nominal, ordinal or interval")


def _unit_counts(
    judgements: pd.DataFrame, units: list[str], value: str, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """(categories, counts): one row of category counts per pairable unit (>= 2 values), units sorted."""
    df = judgements.dropna(subset=[value])
    if df.empty:
        return np.empty(0), np.empty((0, 0))
    unit_codes = df.groupby(units, sort=True, dropna=False).ngroup().to_numpy()
    values = df[value].to_numpy()
    if metric == "nominal":
        values = values.astype(str)  # any labels; order is irrelevant
    elif metric == "interval":
        values = values.astype(float)
    categories, value_codes = np.unique(values, return_inverse=True)
    counts = np.zeros((unit_codes.max() + 1, len(categories)))
    np.add.at(counts, (unit_codes, value_codes), 1.0)
    return categories, counts[counts.sum(axis=1) >= 2]


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each unit's coincidence matrix, flattened (U, C*C): every ordered pair of its values, weighted 1/(m_u - 1)."""
    m = counts.sum(axis=1)
    per_unit = np.einsum("ui,uj->uij", counts, counts) - np.einsum("ui,ij->uij", counts, np.eye(counts.shape[1]))
    return (per_unit / (m - 1.0)[:, None, None]).reshape(len(m), -1)


def _alpha(coincidence: np.ndarray, delta2: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha for a stack of coincidence matrices (B, C, C); NaN where nothing varies."""
    marginals = coincidence.sum(axis=2)
    n = marginals.sum(axis=1)
    observed = (coincidence * delta2).sum(axis=(1, 2)) / n
    expected = np.einsum("bi,bj,ij->b", marginals, marginals, delta2) / (n * (n - 1.0))
    return 1.0 - np.divide(observed, expected, out=np.full_like(n, np.nan), where=expected > 0)


def krippendorff_alpha(
    judgements: pd.DataFrame, *, unit: str | Sequence[str] = "unit", value: str = "value", metric: Metric = "nominal"
) -> float:
    """Krippendorff's alpha from long-format values; units with < 2 values are unpairable and ignored.

    NaN when there is nothing pairable or no variation at all (alpha is undefined then).
    """
    units = [unit] if isinstance(unit, str) else list(unit)
    categories, counts = _unit_counts(judgements, units, value, metric)
    if len(counts) == 0:
        return math.nan
    c = len(categories)
    coincidence = _unit_coincidences(counts).sum(axis=0).reshape(1, c, c)
    delta2 = _delta2(categories, coincidence[0].sum(axis=1), metric)
    return float(_alpha(coincidence, delta2)[0])


def alpha_bootstrap(
    judgements: pd.DataFrame, units: Sequence[str], *, metric: str, n_boot: int, seed: int, ci: float = 0.95
) -> tuple[float, float, float]:
    """(alpha, ci_low, ci_high) resampling units with replacement; nominal or interval metric.

    Each unit's coincidences are summed once; a replicate only reweights units, so the whole bootstrap is one
    matrix product per chunk rather than a Krippendorff computation per replicate. (Ordinal distances
    depend on each replicate's marginals, so ordinal is not offered here.)
    """
    if metric not in ("nominal", "interval"):
        raise ValueError(f"alpha_bootstrap supports nominal and interval, not {metric!r}")
    categories, counts = _unit_counts(judgements, list(units), "value", metric)
    if len(counts) == 0:
        return math.nan, math.nan, math.nan
    per_unit = _unit_coincidences(counts)
    shape = (len(categories), len(categories))
    delta2 = _delta2(categories, np.empty(0), metric)  # nominal and interval need no marginals
    point = float(_alpha(per_unit.sum(axis=0).reshape(1, *shape), delta2)[0])
    k = len(counts)
    if n_boot <= 0 or k < 2:
        return point, math.nan, math.nan
    rng = group_rng(seed, ("alpha", metric, *units))
    replicates = []
    for size in chunks(n_boot, k):
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=size).astype(float)
        replicates.append(_alpha((weights @ per_unit).reshape(-1, *shape), delta2))
    lo, hi = percentile_ci(np.concatenate(replicates), ci)
    return point, float(lo), float(hi)


def _agreement(frame: pd.DataFrame, units: list[str], metric: Metric) -> dict[str, float | int | str]:
    # One value per (unit, annotator): a later row is taken as the annotator's correction of an earlier one.
    frame = frame.drop_duplicates([*units, "annotator"], keep="last")
    per_unit = frame.groupby(units, dropna=False)["value"].transform("size")
    paired = frame[per_unit >= 2]
    return {
        "alpha": krippendorff_alpha(paired, unit=units, value="value", metric=metric),
        "metric": metric,
        "n_units": int(paired.groupby(units, dropna=False).ngroups) if len(paired) else 0,
        "n_judgements": len(paired),
        "n_annotators": int(paired["annotator"].nunique()),
    }


def rating_agreement(
    ratings: pd.DataFrame,
    *,
    unit: Sequence[str] = ("model", "eval_set", "dialog_id", "turn_index"),
    metric: Metric = "interval",
) -> dict[str, float | int | str]:
    """Alpha over 1-5 scores of answers judged by >= 2 annotators (interval metric by default)."""
    units = [c for c in unit if c in ratings.columns]
    frame = ratings.dropna(subset=["score"]).rename(columns={"score": "value"})
    return _agreement(frame[[*units, "annotator", "value"]], units, metric)


def vote_agreement(
    votes: pd.DataFrame, *, unit: Sequence[str] = ("round", "item"), both_bad: Literal["keep", "tie"] = "keep"
) -> dict[str, float | int | str]:
    """Nominal alpha over blind votes on items judged by >= 2 annotators."""
    units = [c for c in unit if c in votes.columns]
    # The chosen model's name, not "model_a"/"left", so annotators who saw the pair swapped still agree.
    value = np.select(
        [votes["winner"] == "model_a", votes["winner"] == "model_b"],
        [votes["model_a"].astype(str), votes["model_b"].astype(str)],
        votes["winner"].astype(str),
    )
    if both_bad == "tie":
        value = np.where(value == "both_bad", "tie", value)
    frame = votes[[*units, "annotator"]].assign(value=value)
    return _agreement(frame, units, "nominal")


# -------------------------------------------------------------------------------------- position bias


def wilson_interval(successes: int, trials: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible near 0 and 1, unlike the normal one)."""
    if trials == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def _left_won(votes: pd.DataFrame) -> pd.Series:
    """True/False for decisive votes (the left-shown model won or not); NaN for ties and 'both bad'."""
    winner_model = np.where(votes["winner"] == "model_a", votes["model_a"], votes["model_b"])
    decisive = votes["winner"].isin(["model_a", "model_b"])
    return pd.Series(np.where(decisive, (winner_model == votes["left_model"]).astype(float), np.nan), index=votes.index)


def position_bias(votes: pd.DataFrame, by: Sequence[str] = (), *, ci: float = 0.95) -> pd.DataFrame:
    """Share of decisive votes that went to the left-shown answer, with a Wilson CI (0.5 = no bias)."""
    by = list(by)
    frame = votes.assign(_left=_left_won(votes))
    groups = frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        left = g["_left"].dropna()
        lo, hi = wilson_interval(int(left.sum()), len(left), ci)
        rows.append(
            {
                **dict(zip(by, key)),
                "n_votes": len(g),
                "n_decisive": len(left),
                "left_wins": int(left.sum()),
                "left_share": left.mean() if len(left) else math.nan,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n_votes", "n_decisive", "left_wins", "left_share", "ci_low", "ci_high"])


# ------------------------------------------------------------------------------------ annotator counts


def annotator_summary(votes: pd.DataFrame, ratings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per annotator: votes by outcome, left share of decisive votes, and (if given) rating count and mean."""
    frame = votes.assign(_left=_left_won(votes))
    out = frame.groupby("annotator").agg(
        n_votes=("winner", "size"),
        decisive=("_left", "count"),
        ties=("winner", lambda w: int((w == "tie").sum())),
        both_bad=("winner", lambda w: int((w == "both_bad").sum())),
        left_share=("_left", "mean"),
    )
    if ratings is not None:
        rated = ratings.dropna(subset=["score"]).groupby("annotator")["score"].agg(n_ratings="size", mean_score="mean")
        out = out.join(rated, how="outer")
        out[["n_votes", "decisive", "ties", "both_bad", "n_ratings"]] = (
            out[["n_votes", "decisive", "ties", "both_bad", "n_ratings"]].fillna(0).astype(int)
        )
    return out.reset_index().sort_values("annotator").reset_index(drop=True)
