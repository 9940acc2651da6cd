"""Votes spent where they decide something: active pair priorities and the stopping rule of a blind round.

Active sampling follows the idea of the Chatbot Arena paper (Chiang et al. 2024, section 5: sample the pair
whose next vote most reduces the uncertainty, from the current BT estimate and each pair's vote count), aimed
at what a round is for: the order of neighbouring models. With the current BT fit and its covariance C
(inverse Fisher information), one more vote on pair u = e_i - e_j with p = P(i beats j) reduces the variance
of model k's strength (a = e_k) by (Sherman-Morrison)

    q (aᵀCu)² / (1 + q uᵀCu),  q = p (1 - p).

The stopping rule asks each model's own interval to clear its neighbour's (sd_k + sd_k+1 < gap / 1.96), so
a pair's priority is that reduction for both models of every adjacent pair whose intervals still overlap,
each divided by the pair's squared gap (a pair twice as close needs four times the precision). Aiming at
the variance of the difference instead (a = e_k - e_k+1) fed the comparisons that shrink the difference but
not the intervals; benchmarks/active_sampling.py measured that rule needing as many votes as uniform
sampling at 30 models, and this one 1.5x (10 models) to 3.4x (30) fewer (docs/ranking.md). Pairs with fewer than
``min_pair_votes`` votes come first, so that a bad first estimate cannot starve a pair.

The stopping rule reads the pairwise leaderboard: adjacent models whose intervals separate, and for the others
the votes still needed at the current rate (interval half-widths shrink as 1/sqrt(votes)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena.stats.pairwise import _NAT_TO_ELO, _fit_bt

Z95 = 1.959963984540054
# Gaps below this (400-point scale) count as this: two models 1 point apart would otherwise take every vote.
MIN_GAP = 10.0
L2 = 1e-3


def win_matrix(models: Sequence[str], outcomes: Mapping[tuple[str, str], tuple[float, float]]) -> np.ndarray:
    """W[i, j] = (half-)wins of models[i] over models[j] from {(a, b): (score of a, votes)} (ties = 0.5 each)."""
    index = {m: k for k, m in enumerate(models)}
    w = np.zeros((len(models), len(models)))
    for (a, b), (score_a, n) in outcomes.items():
        if a in index and b in index and a != b:
            w[index[a], index[b]] += score_a
            w[index[b], index[a]] += n - score_a
    return w


@dataclass(frozen=True)
class Estimate:
    """The current BT estimate of a round: strengths (natural units), their covariance, votes per pair."""

    models: list[str]
    theta: np.ndarray
    cov: np.ndarray
    games: np.ndarray  # (n, n) votes per pair

    @classmethod
    def fit(cls, models: Sequence[str], w: np.ndarray, l2: float = L2) -> Estimate:
        """Fit BT on the win matrix and invert its Fisher information (sum-to-zero gauge)."""
        n = len(models)
        theta = _fit_bt(w[None], l2)[0] if n else np.zeros(0)
        games = w + w.T
        p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
        info = games * p * (1.0 - p)
        fisher = np.diag(info.sum(axis=1)) - info + l2 * np.eye(n)
        # Ratings are defined up to a shift: pin the mean (adding 11ᵀ/n), then remove that direction again.
        ones = np.full((n, n), 1.0 / n)
        cov = np.linalg.inv(fisher + ones) - ones if n else np.zeros((0, 0))
        return cls(list(models), theta, cov, games)

    def order(self) -> list[int]:
        """Model indexes from strongest to weakest (ties by name, as the leaderboard orders them)."""
        return sorted(range(len(self.models)), key=lambda k: (-self.theta[k], self.models[k]))

    def adjacent(self, z: float = Z95) -> list[tuple[int, int, float, bool]]:
        """(upper, lower, gap in natural units, intervals separate) for each neighbouring pair in the order."""
        order, sd = self.order(), np.sqrt(np.clip(np.diag(self.cov), 0.0, None))
        out = []
        for hi, lo in zip(order, order[1:]):
            gap = float(self.theta[hi] - self.theta[lo])
            out.append((hi, lo, gap, bool(gap > z * (sd[hi] + sd[lo]))))
        return out


def pair_priorities(estimate: Estimate, *, min_pair_votes: int = 2, z: float = Z95) -> dict[tuple[str, str], float]:
    """Priority of one more vote on each model pair (keys sorted by name); higher first.

    Pairs with fewer than ``min_pair_votes`` votes get ``inf`` minus their vote count, so the emptiest come
    first. When every adjacent pair separates, every adjacent pair still counts (the intervals keep shrinking).
    """
    m, n = estimate.models, len(estimate.models)
    if n < 2:
        return {}
    adjacent = estimate.adjacent(z)
    targets = [t for t in adjacent if not t[3]] or adjacent
    # Both models of each open pair, each weighted by that pair's squared gap.
    rows = np.array([k for hi, lo, _, _ in targets for k in (hi, lo)])
    gap = np.repeat([max(abs(g), MIN_GAP / _NAT_TO_ELO) for _, _, g, _ in targets], 2)
    ca = estimate.cov[rows]  # (2 targets, n): aᵀC for a = e_k
    acu = ca[:, :, None] - ca[:, None, :]  # (2 targets, n, n): aᵀCu for u = e_i - e_j
    var = np.diag(estimate.cov)
    ucu = var[:, None] + var[None, :] - 2.0 * estimate.cov
    p = 1.0 / (1.0 + np.exp(estimate.theta[None, :] - estimate.theta[:, None]))
    q = p * (1.0 - p)
    gain = np.sum(q * acu**2 / (1.0 + q * ucu) / (gap**2)[:, None, None], axis=0)
    out: dict[tuple[str, str], float] = {}
    for i in range(n):
        for j in range(i + 1, n):
            key = (m[i], m[j]) if m[i] < m[j] else (m[j], m[i])
            votes = estimate.games[i, j]
            # Unvoted pairs first, then the ones under the minimum by fewest votes, then by information gain.
            out[key] = (
                math.inf if votes == 0 else 1e300 / (1.0 + votes) if votes < min_pair_votes else float(gain[i, j])
            )
    return out


# ------------------------------------------------------------------------------------------ stopping rule


def separation(pairwise: pd.DataFrame, n_votes: int) -> pd.DataFrame:
    """For each adjacent pair of a pairwise leaderboard (model, rating, ci_low, ci_high; best first): whether
    their intervals separate, and the votes still needed to separate them at the current rate.

    Half-widths shrink as 1/sqrt(N): with h the two inner half-widths summed and g the gap, separation needs
    N' with h sqrt(N/N') < g, i.e. about N ((h/g)² - 1) more votes. None where g <= 0 or there is no interval.
    """
    rows = []
    table = pairwise.sort_values(["rating", "model"], ascending=[False, True]).reset_index(drop=True)
    for k in range(len(table) - 1):
        up, down = table.iloc[k], table.iloc[k + 1]
        gap = float(up["rating"] - down["rating"])
        half = float((up["rating"] - up["ci_low"]) + (down["ci_high"] - down["rating"]))
        separated = bool(up["ci_low"] > down["ci_high"]) if not math.isnan(half) else False
        if separated:
            needed: float | None = 0.0
        elif math.isnan(half) or gap <= 0 or n_votes <= 0:
            needed = None
        else:
            needed = math.ceil(n_votes * ((half / gap) ** 2 - 1.0))
        rows.append(
            {
                "upper": up["model"],
                "lower": down["model"],
                "gap": gap,
                "separated": separated,
                "votes_needed": needed,
            }
        )
    return pd.DataFrame(rows, columns=["upper", "lower", "gap", "separated", "votes_needed"])


def settled_top(separated: Sequence[bool]) -> int:
    """k such that the top k places are settled: the first k adjacent pairs separate (model 1 above 2, ...,
    model k above k + 1). With every pair separated, the whole order (all len + 1 models)."""
    k = 0
    for ok in separated:
        if not ok:
            break
        k += 1
    return len(separated) + 1 if separated and k == len(separated) else k
