"""Pairwise votes: Bradley-Terry with bootstrap CIs, online Elo, win-rate and battle-count matrices."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from arena.stats.bootstrap import chunks, ci_rank, group_rng, percentile_ci

BothBad = Literal["tie", "drop"]
WINNERS = ("model_a", "model_b", "tie", "both_bad")
ELO_SCALE = 400.0
_NAT_TO_ELO = ELO_SCALE / math.log(10.0)


# --------------------------------------------------------------------------------- pairwise: preparation


_SCORE_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5}


class _Coded(NamedTuple):
    """Votes as integer codes into ``models`` (sorted names), in the votes' order, and the score of a."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    s: np.ndarray


def _kept(votes: pd.DataFrame, both_bad: BothBad) -> tuple[pd.DataFrame, np.ndarray]:
    """The votes that count (validated) and the score of model_a in each: 1, 0.5 for a tie, 0."""
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
    # Map the few distinct winner values, not every row: Series.map over 100k strings costs ~20 ms, and
    # factorizing the column itself (Arrow strings) ~1 ms against ~7 ms for an object copy of it.
    codes, uniques = pd.factorize(df["winner"], use_na_sentinel=False)
    score = np.array([_SCORE_A[w] for w in uniques], dtype=float)[codes]
    return df, score


def _outcomes(votes: pd.DataFrame, both_bad: BothBad) -> pd.DataFrame:
    """Votes as (model_a, model_b, score_a) with ties worth half a win each way."""
    df, score = _kept(votes, both_bad)
    # Object columns, not pandas' default Arrow strings: callers iterate them (set(), map), and iterating
    # 2 x 100k Arrow strings costs ~0.3 s against ~10 ms for plain Python strings.
    return pd.DataFrame(
        {
            "model_a": pd.Series(df["model_a"].astype(str).to_numpy(dtype=object), dtype=object),
            "model_b": pd.Series(df["model_b"].astype(str).to_numpy(dtype=object), dtype=object),
            "score_a": score,
        }
    )


def _coded(votes: pd.DataFrame, both_bad: BothBad) -> _Coded:
    """As ``_outcomes``, with the names replaced by their index in the sorted list of models.

    Everything downstream works on these integer arrays: iterating or mapping the (Arrow-backed) name
    columns row by row took ~0.6 s of a 0.7 s leaderboard refresh at 100k votes.
    """
    df, score = _kept(votes, both_bad)
    # Codes in first-seen order per column (hashing the column as stored), then re-coded to sorted names.
    codes_a, names_a = pd.factorize(df["model_a"].astype(str), use_na_sentinel=False)
    codes_b, names_b = pd.factorize(df["model_b"].astype(str), use_na_sentinel=False)
    names_a, names_b = list(names_a), list(names_b)
    models = sorted(set(names_a) | set(names_b))
    position = {m: k for k, m in enumerate(models)}
    a = np.array([position[m] for m in names_a], dtype=np.int64)[codes_a]
    b = np.array([position[m] for m in names_b], dtype=np.int64)[codes_b]
    return _Coded(models, a, b, score)


def _cells(votes: _Coded) -> pd.DataFrame:
    """The distinct (i < j, score of i) outcomes with their counts, sorted; bootstraps reweight these."""
    n = len(votes.models)
    swap = votes.a > votes.b
    i = np.where(swap, votes.b, votes.a)
    j = np.where(swap, votes.a, votes.b)
    s = np.where(swap, 1.0 - votes.s, votes.s)
    # Scores are 0, 0.5 or 1, so (i, j, 2s) is one integer key, in the order a sorted groupby would give.
    key = (i * n + j) * 3 + (2.0 * s).astype(np.int64)
    if 3 * n * n <= max(len(key), 1 << 16):  # a count per possible key: O(votes), ~1 ms at 100k votes
        counts = np.bincount(key, minlength=3 * n * n)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:  # many models and few votes: sort instead of allocating n^2 counters
        keys, counts = np.unique(key, return_counts=True)
    return pd.DataFrame({"i": keys // 3 // n, "j": keys // 3 % n, "s": (keys % 3) / 2.0, "count": counts})


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
        # An unclipped step keeps the mean of theta at 0 (the optimum's, where l2 * sum(theta) = 0); a clipped
        # one would shift it, and the tiny l2 then pulls the mean back by ~l2 per step, so sparse fits ran all
        # 100 iterations (4.6 ms against 0.34 ms for a 10-model round's estimate, same ratings to 1e-12).
        step -= step.mean(axis=1, keepdims=True)
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
    coded = _coded(votes, both_bad)
    models, cells = coded.models, _cells(coded)
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
    coded = _coded(votes, both_bad)
    models, cells = coded.models, _cells(coded)
    draws = _bootstrap_counts(cells, n_boot, seed)
    return pd.DataFrame(_ratings_from_counts(models, cells, draws, l2, anchor_model, anchor_value), columns=models)


def _online_elo(votes: _Coded, k: float, init: float) -> dict[str, float]:
    # Order-dependent, so a Python loop; over plain lists of ints and floats it takes ~25 ms per 100k votes
    # against ~0.6 s over the name columns, with the same float operations in the same order.
    rating = [init] * len(votes.models)
    scale = ELO_SCALE
    for a, b, s in zip(votes.a.tolist(), votes.b.tolist(), votes.s.tolist()):
        ra, rb = rating[a], rating[b]
        delta = k * (s - 1.0 / (1.0 + 10.0 ** ((rb - ra) / scale)))  # k * (score - expected score of a)
        rating[a] = ra + delta
        rating[b] = rb - delta
    return dict(zip(votes.models, rating))


def online_elo(
    votes: pd.DataFrame, *, k: float = 4.0, init: float = 1000.0, both_bad: BothBad = "tie"
) -> dict[str, float]:
    """Sequential Elo in the votes' row order: ORDER-DEPENDENT, shown only for comparison with BT."""
    return _online_elo(_coded(votes, both_bad), k, init)


def _record(votes: _Coded) -> pd.DataFrame:
    """Per model: battles, wins, ties, losses (ties include 'both bad' when it counts as a tie)."""
    n = len(votes.models)
    # One count per (model, own score 0 / 0.5 / 1): column 0 losses, 1 ties, 2 wins.
    own = np.concatenate(
        [votes.a * 3 + (2.0 * votes.s).astype(np.int64), votes.b * 3 + (2.0 - 2.0 * votes.s).astype(np.int64)]
    )
    counts = np.bincount(own, minlength=3 * n).reshape(n, 3)
    battles = counts.sum(axis=1)
    # Scores are multiples of 0.5, so this sum is exact and the mean equals a groupby mean bit for bit.
    win_rate = (counts[:, 2] + 0.5 * counts[:, 1]) / battles  # every listed model has a battle
    return pd.DataFrame(
        {
            "n_battles": battles,
            "wins": counts[:, 2],
            "ties": counts[:, 1],
            "losses": counts[:, 0],
            "win_rate": win_rate,
        },
        index=pd.Index(votes.models, name="model"),
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
    coded = _coded(votes, both_bad)
    models, cells = coded.models, _cells(coded)
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
    table = table.join(_record(coded), on="model")
    table["online_elo"] = table["model"].map(_online_elo(coded, elo_k, 1000.0))
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
    coded = _coded(votes, both_bad)
    models, cells = coded.models, _cells(coded)
    w = _win_matrices(cells, cells["count"].to_numpy(dtype=float)[None, :], len(models))[0]
    return _matrix_frame((w + w.T).astype(int), models, order)


def win_rate_matrix(
    votes: pd.DataFrame, *, both_bad: BothBad = "tie", order: Iterable[str] | None = None
) -> pd.DataFrame:
    """Share of battles the row model won against the column model (ties half); NaN where they never met."""
    coded = _coded(votes, both_bad)
    models, cells = coded.models, _cells(coded)
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
