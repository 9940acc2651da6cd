"""Pairwise votes: Bradley-Terry with bootstrap CIs, online Elo, win-rate and battle-count matrices."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from arena.stats.bootstrap import chunks, ci_rank, group_rng, percentile_ci

BothBad = Literal["tie", "drop"]
WINNERS = ("model_a", "model_b", "tie", "both_bad")
ELO_SCALE = 400.0
_NAT_TO_ELO = ELO_SCALE / math.log(10.0)


# --------------------------------------------------------------------------------- pairwise: preparation


def _outcomes(votes: pd.DataFrame, both_bad: BothBad) -> pd.DataFrame:
    """Votes as (model_a, model_b, score_a) with ties worth half a win each way."""
    unknown = set(votes["winner"].unique()) - set(WINNERS)
    if unknown:
        raise ValueError(f"unknown winner values {sorted(map(str, unknown))}; expected {WINNERS}")
    if both_bad not in ("tie", "drop"):
        raise ValueError(f"both_bad must be 'tie' or 'drop', got {both_bad!r}")
    df = votes[["model_a", "model_b", "winner"]]
    if both_bad == "drop":
        df = df[df["winner"] != "both_bad"]
    # A model against itself says nothing about the ranking.
    df = df[df["model_a"] != df["model_b"]]
    score = df["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5})
    return pd.DataFrame(
        {
            "model_a": df["model_a"].astype(str).to_numpy(),
            "model_b": df["model_b"].astype(str).to_numpy(),
            "score_a": score.to_numpy(dtype=float),
        }
    )


def _cells(out: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Models and the distinct (i < j, score of i) outcomes with their counts; bootstraps reweight these."""
    models = sorted(set(out["model_a"]) | set(out["model_b"]))
    index = {m: k for k, m in enumerate(models)}
    a = out["model_a"].map(index).to_numpy()
    b = out["model_b"].map(index).to_numpy()
    s = out["score_a"].to_numpy()
    swap = a > b
    cells = pd.DataFrame({"i": np.where(swap, b, a), "j": np.where(swap, a, b), "s": np.where(swap, 1.0 - s, s)})
    cells = cells.groupby(["i", "j", "s"], sort=True).size().rename("count").reset_index()
    return models, cells


def _win_matrices(cells: pd.DataFrame, counts: np.ndarray, n: int) -> np.ndarray:
    """W[b, i, j] = (half-)wins of i over j in replicate b, from per-cell counts of shape (B, cells)."""
    w = np.zeros((counts.shape[0], n, n))
    i, j, s = cells["i"].to_numpy(), cells["j"].to_numpy(), cells["s"].to_numpy()
    for value in np.unique(s):  # (i, j) pairs are unique within one outcome, so fancy += is safe
        m = s == value
        w[:, i[m], j[m]] += counts[:, m] * value
        w[:, j[m], i[m]] += counts[:, m] * (1.0 - value)
    return w


# -------------------------------------------------------------------------------- pairwise: Bradley-Terry


def _fit_bt(w: np.ndarray, l2: float, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Penalised BT log-strengths (natural units) by batched Newton steps, one fit per win matrix in ``w``."""
    if l2 <= 0:
        raise ValueError("l2 must be > 0: without it a model that wins or loses every battle has no finite rating")
    n_games = w + w.transpose(0, 2, 1)
    theta = np.zeros(w.shape[:2])
    eye = np.eye(w.shape[1])
    # Ratings are only defined up to a shift; the all-ones term fixes that direction so a tiny l2 stays well
    # conditioned. It does not move the solution: the gradient has no component along it at the optimum.
    gauge = np.full_like(eye, 1.0 / w.shape[1])
    for _ in range(max_iter):
        p = 0.5 * (1.0 + np.tanh((theta[:, :, None] - theta[:, None, :]) / 2.0))  # overflow-free sigmoid
        grad = (w - n_games * p).sum(axis=2) - l2 * theta
        info = n_games * p * (1.0 - p)
        neg_hess = info.sum(axis=2)[:, :, None] * eye - info + l2 * eye + gauge
        step = np.linalg.solve(neg_hess, grad[..., None])[..., 0]
        # Damping only bites while a model that wins (or loses) everything drifts towards the penalty's bound.
        step = np.clip(step, -2.0, 2.0)
        theta += step
        if np.abs(step).max() < tol:
            break
    return theta


def _to_scale(
    theta: np.ndarray, present: np.ndarray, models: list[str], anchor_model: str | None, anchor_value: float
) -> np.ndarray:
    """Natural log-strengths -> 400-point scale, anchored at one model or with the mean at ``anchor_value``."""
    r = np.where(present, theta * _NAT_TO_ELO, np.nan)
    if anchor_model is not None:
        if anchor_model not in models:
            raise ValueError(f"anchor model {anchor_model!r} has no votes")
        k = models.index(anchor_model)
        return r - r[:, [k]] + anchor_value
    return r - np.nanmean(r, axis=1, keepdims=True) + anchor_value


def _ratings_from_counts(
    models: list[str], cells: pd.DataFrame, counts: np.ndarray, l2: float, anchor_model: str | None, anchor_value: float
) -> np.ndarray:
    """Scaled ratings (B, models) for each row of per-cell counts (B, cells), fitted in memory-bounded chunks."""
    n = len(models)
    if n == 0:  # no votes yet is a normal state for a new round, not an error
        return np.empty((len(counts), 0))
    parts, start = [], 0
    for size in chunks(len(counts), n * n):
        w = _win_matrices(cells, counts[start : start + size], n)
        start += size
        present = (w + w.transpose(0, 2, 1)).sum(axis=2) > 0
        parts.append(_to_scale(_fit_bt(w, l2), present, models, anchor_model, anchor_value))
    return np.concatenate(parts) if parts else np.empty((0, n))


def _bootstrap_counts(cells: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    """Per-cell counts of ``n_boot`` vote resamples."""
    counts = cells["count"].to_numpy(dtype=float)
    if counts.sum() == 0:
        return np.empty((n_boot, len(counts)))
    # Resampling votes only changes how often each distinct outcome occurs: draw those counts directly.
    rng = group_rng(seed, "bradley_terry")
    return rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot).astype(float)


def bradley_terry(
    votes: pd.DataFrame,
    *,
    both_bad: BothBad = "tie",
    anchor_model: str | None = None,
    anchor_value: float = 1000.0,
    l2: float = 1e-3,
) -> dict[str, float]:
    """Bradley-Terry maximum-likelihood ratings on the 400-point scale (ties = half a win each way).

    ``l2`` is a tiny penalty on the natural-log strengths that keeps ratings finite when a model wins or
    loses every battle; with hundreds of votes it moves ratings by far less than a point.
    """
    models, cells = _cells(_outcomes(votes, both_bad))
    counts = cells["count"].to_numpy(dtype=float)[None, :]
    ratings = _ratings_from_counts(models, cells, counts, l2, anchor_model, anchor_value)[0]
    return dict(zip(models, ratings.tolist()))


def bt_bootstrap(
    votes: pd.DataFrame,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    both_bad: BothBad = "tie",
    anchor_model: str | None = None,
    anchor_value: float = 1000.0,
    l2: float = 1e-3,
) -> pd.DataFrame:
    """Bootstrap BT ratings (rows: replicates, columns: models) resampling votes; NaN where a model drew none."""
    models, cells = _cells(_outcomes(votes, both_bad))
    draws = _bootstrap_counts(cells, n_boot, seed)
    return pd.DataFrame(_ratings_from_counts(models, cells, draws, l2, anchor_model, anchor_value), columns=models)


def _online_elo(out: pd.DataFrame, k: float, init: float) -> dict[str, float]:
    rating: dict[str, float] = {m: init for m in sorted(set(out["model_a"]) | set(out["model_b"]))}
    for a, b, s in zip(out["model_a"], out["model_b"], out["score_a"]):
        expected_a = 1.0 / (1.0 + 10.0 ** ((rating[b] - rating[a]) / ELO_SCALE))
        rating[a] += k * (s - expected_a)
        rating[b] -= k * (s - expected_a)
    return rating


def online_elo(
    votes: pd.DataFrame, *, k: float = 4.0, init: float = 1000.0, both_bad: BothBad = "tie"
) -> dict[str, float]:
    """Sequential Elo in the votes' row order: ORDER-DEPENDENT, shown only for comparison with BT."""
    return _online_elo(_outcomes(votes, both_bad), k, init)


def _record(out: pd.DataFrame) -> pd.DataFrame:
    """Per model: battles, wins, ties, losses (ties include 'both bad' when it counts as a tie)."""
    both = pd.concat(
        [
            pd.DataFrame({"model": out["model_a"], "s": out["score_a"]}),
            pd.DataFrame({"model": out["model_b"], "s": 1.0 - out["score_a"]}),
        ]
    )
    both = both.assign(win=both["s"] == 1.0, tie=both["s"] == 0.5, loss=both["s"] == 0.0)
    return both.groupby("model").agg(
        n_battles=("s", "size"),
        wins=("win", "sum"),
        ties=("tie", "sum"),
        losses=("loss", "sum"),
        win_rate=("s", "mean"),
    )


def pairwise_leaderboard(
    votes: pd.DataFrame,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    both_bad: BothBad = "tie",
    anchor_model: str | None = None,
    anchor_value: float = 1000.0,
    l2: float = 1e-3,
    elo_k: float = 4.0,
) -> pd.DataFrame:
    """BT rating with bootstrap CI and CI-overlap rank per model, W/T/L record and order-dependent online Elo.

    Columns: model, rating, ci_low, ci_high, rank, n_battles, wins, ties, losses, win_rate, online_elo.
    """
    out = _outcomes(votes, both_bad)
    models, cells = _cells(out)
    point = _ratings_from_counts(
        models, cells, cells["count"].to_numpy(dtype=float)[None, :], l2, anchor_model, anchor_value
    )[0]
    table = pd.DataFrame(
        {
            "model": pd.Series(models, dtype=object),
            "rating": pd.Series(point, dtype=float),
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
    )
    if n_boot > 0:
        boot = _ratings_from_counts(
            models, cells, _bootstrap_counts(cells, n_boot, seed), l2, anchor_model, anchor_value
        )
        table["ci_low"], table["ci_high"] = percentile_ci(boot, ci)  # skips replicates where a model drew no votes
    table["rank"] = ci_rank(table["ci_low"], table["ci_high"])
    table = table.join(_record(out), on="model")
    table["online_elo"] = table["model"].map(_online_elo(out, elo_k, 1000.0))
    return table.sort_values(["rating", "model"], ascending=[False, True]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- matrices


def _matrix_frame(values: np.ndarray, models: list[str], order: Iterable[str] | None) -> pd.DataFrame:
    frame = pd.DataFrame(values, index=pd.Index(models, name="model"), columns=pd.Index(models, name="opponent"))
    if order is not None:
        order = [m for m in order if m in frame.index]
        frame = frame.loc[order, order]
    return frame


def battle_count_matrix(
    votes: pd.DataFrame, *, both_bad: BothBad = "tie", order: Iterable[str] | None = None
) -> pd.DataFrame:
    """Symmetric matrix of battles per model pair (ties included); rows and columns in ``order`` if given."""
    models, cells = _cells(_outcomes(votes, both_bad))
    w = _win_matrices(cells, cells["count"].to_numpy(dtype=float)[None, :], len(models))[0]
    return _matrix_frame((w + w.T).astype(int), models, order)


def win_rate_matrix(
    votes: pd.DataFrame, *, both_bad: BothBad = "tie", order: Iterable[str] | None = None
) -> pd.DataFrame:
    """Share of battles the row model won against the column model (ties half); NaN where they never met."""
    models, cells = _cells(_outcomes(votes, both_bad))
    w = _win_matrices(cells, cells["count"].to_numpy(dtype=float)[None, :], len(models))[0]
    games = w + w.T
    rate = np.divide(w, games, out=np.full_like(w, np.nan), where=games > 0)
    if order is None:  # strongest first by overall (half-)win share
        order = [models[k] for k in np.argsort(-w.sum(axis=1) / np.maximum(games.sum(axis=1), 1), kind="stable")]
    return _matrix_frame(rate, models, order)


def expected_win_matrix(ratings: Mapping[str, float], order: Iterable[str] | None = None) -> pd.DataFrame:
    """Win probability of the row model over the column model implied by 400-point-scale ratings."""
    models = list(order) if order is not None else sorted(ratings, key=lambda m: -ratings[m])
    r = np.array([ratings[m] for m in models])
    p = 1.0 / (1.0 + 10.0 ** ((r[None, :] - r[:, None]) / ELO_SCALE))
    np.fill_diagonal(p, np.nan)
    return _matrix_frame(p, models, None)
