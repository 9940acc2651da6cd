"""Mean 1-5 scores and per-answer metrics per model, with cluster-bootstrap CIs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from arena.stats.bootstrap import chunks, ci_rank, group_rng, percentile_ci


def _as_float(series: pd.Series) -> np.ndarray:
    # Nullable booleans arrive as object columns holding True/False/None; float keeps None as NaN.
    try:
        return series.astype("float64").to_numpy()
    except (TypeError, ValueError):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _ratio_bootstrap(
    num: np.ndarray, den: np.ndarray, clusters: np.ndarray, n_boot: int, rng: np.random.Generator, ci: float
) -> tuple[float, float, float]:
    """Estimate sum(num)/sum(den) and a percentile CI, resampling whole clusters with replacement."""
    sums = np.bincount(clusters, weights=num)
    dens = np.bincount(clusters, weights=den)
    estimate = sums.sum() / dens.sum() if dens.sum() > 0 else math.nan
    k = len(sums)
    if n_boot <= 0 or k < 2:
        return estimate, math.nan, math.nan  # one cluster carries no information about its own spread
    replicates = []
    for size in chunks(n_boot, k):
        idx = rng.integers(0, k, size=(size, k))
        s, d = sums[idx].sum(axis=1), dens[idx].sum(axis=1)
        replicates.append(np.divide(s, d, out=np.full_like(s, np.nan), where=d > 0))
    lo, hi = percentile_ci(np.concatenate(replicates), ci)
    return estimate, float(lo), float(hi)


def _cluster_codes(frame: pd.DataFrame, cluster: Sequence[str] | None) -> np.ndarray:
    cols = [c for c in (cluster or ()) if c in frame.columns]
    if not cols:
        return np.arange(len(frame))  # no cluster columns: every row is its own cluster (naive bootstrap)
    return frame.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()


def _rank_within(out: pd.DataFrame, groups: list[str], value: str) -> pd.DataFrame:
    """Add a CI-overlap rank within each group and sort by group then value, best first."""
    if out.empty:
        out["rank"] = pd.Series(dtype=int)
        return out
    parts = [
        g.assign(rank=ci_rank(g["ci_low"], g["ci_high"]))
        for _, g in (out.groupby(groups, sort=True, dropna=False) if groups else [(None, out)])
    ]
    out = pd.concat(parts)
    return out.sort_values([*groups, value], ascending=[True] * len(groups) + [False]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ mean scores


def score_leaderboard(
    ratings: pd.DataFrame,
    by: Sequence[str] = ("model",),
    *,
    cluster: Sequence[str] | None = ("eval_set", "dialog_id"),
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Mean 1-5 score per ``by`` group with a dialog-clustered bootstrap CI and a CI-overlap rank."""
    by = list(by)
    columns = [*by, "mean", "ci_low", "ci_high", "n", "n_dialogs", "n_annotators", "rank"]
    df = ratings.dropna(subset=["score"])
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        codes = _cluster_codes(g, cluster)
        score = g["score"].to_numpy(dtype=float)
        # Turns of one dialog are correlated, so the dialog (not the turn) is the resampling unit.
        mean, lo, hi = _ratio_bootstrap(score, np.ones_like(score), codes, n_boot, group_rng(seed, key), ci)
        rows.append(
            {
                **dict(zip(by, key)),
                "mean": mean,
                "ci_low": lo,
                "ci_high": hi,
                "n": len(g),
                "n_dialogs": int(codes.max()) + 1,
                "n_annotators": g["annotator"].nunique() if "annotator" in g else math.nan,
            }
        )
    out = pd.DataFrame(rows, columns=columns[:-1])
    return _rank_within(out, [c for c in by if c != "model"], "mean")[columns]


# ------------------------------------------------------------------------------------ automatic metrics


def _metric_parts(gen: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(numerator, denominator) per row for each metric; the aggregate is sum(num) / sum(den)."""

    def col(name: str) -> np.ndarray:
        return _as_float(gen[name]) if name in gen.columns else np.full(len(gen), np.nan)

    ones = np.ones(len(gen))
    parts = {
        name: (col(name), ones)
        for name in ("similarity", "tool_name_match", "tool_args_match", "repetition", "repeats_earlier_turn")
    }
    if "text" in gen.columns:
        parts["answer_chars"] = (
            gen["text"].map(lambda t: len(t) if isinstance(t, str) else np.nan).to_numpy(dtype=float),
            ones,
        )
    tokens, total_ms, tps = col("tokens"), col("total_ms"), col("tokens_per_s")
    parts["tokens"] = (tokens, ones)
    parts["ttft_ms"] = (col("ttft_ms"), ones)
    parts["total_ms"] = (total_ms, ones)
    # Speed is pooled (total time / total tokens) as llama.cpp reports it, so ms/token and tokens/s agree
    # (5.69 ms/token <-> 175.74 tokens/s). The per-answer rate defines the decode time where metrics.py gave one.
    with np.errstate(divide="ignore", invalid="ignore"):
        decode_ms = np.where(tps > 0, tokens / tps * 1000.0, total_ms)
    usable = (tokens > 0) & (decode_ms > 0)
    parts["ms_per_token"] = (np.where(usable, decode_ms, np.nan), np.where(usable, tokens, np.nan))
    parts["tokens_per_s"] = (np.where(usable, tokens, np.nan), np.where(usable, decode_ms / 1000.0, np.nan))
    return parts


def metric_summary(
    generations: pd.DataFrame,
    by: Sequence[str] = ("model",),
    *,
    cluster: Sequence[str] | None = ("eval_set", "dialog_id"),
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Automatic metrics per group (long format: one row per group x metric) with clustered bootstrap CIs."""
    by = list(by)
    columns = [*by, "metric", "value", "ci_low", "ci_high", "n", "n_dialogs"]
    rows = []
    for key, g in generations.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        codes = _cluster_codes(g, cluster)
        for metric, (num, den) in _metric_parts(g).items():
            ok = ~(np.isnan(num) | np.isnan(den))
            if not ok.any():
                continue  # e.g. tool-call match for a group with no tool turns
            _, used = np.unique(codes[ok], return_inverse=True)
            value, lo, hi = _ratio_bootstrap(num[ok], den[ok], used, n_boot, group_rng(seed, (*key, metric)), ci)
            rows.append(
                {
                    **dict(zip(by, key)),
                    "metric": metric,
                    "value": value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": int(ok.sum()),
                    "n_dialogs": int(used.max()) + 1,
                }
            )
    return pd.DataFrame(rows, columns=columns)
