"""Time Bradley-Terry and style control, fit + bootstrap: arena.stats against evalica and per-battle references.

    .venv/bin/python benchmarks/bt_bootstrap.py [--models 30] [--votes 100000] [--rounds 1000]
        [--ref-rounds 10] [--repeats 3] [--seed 0]

One run, one set of simulated battles (known strengths, 10% ties; style counts planted so that the
winner's answer tends to be longer and more formatted) for every row:

- single fit: ``pairwise_leaderboard(votes, n_boot=0)`` (what a leaderboard refresh does, online Elo and
  W/T/L record included), the bare ``bradley_terry`` fit, evalica's ``bradley_terry`` (Rust, Newman's
  iteration, ties half a win each way as its ``tie_weight=0.5`` default), and plain per-vote logistic
  regressions (numpy IRLS; scipy L-BFGS-B as FastChat's ``fit_bt``);
- ``--rounds`` bootstraps: ``bt_bootstrap`` against ``evalica.bootstrap`` (scipy's percentile bootstrap,
  one evalica fit per resample; its default BCa would add a 100k-fit jackknife) and the per-vote refits;
- style control: ``style_control`` against a reference that does what FastChat's
  ``compute_bootstrap_style_control`` does: per battle, model +-1 columns and the standardised
  ``(x_a - x_b) / (x_a + x_b + 1)`` style columns, one L2-penalised logistic fit by scipy L-BFGS-B, refitted
  on every resample of battles (single process here; FastChat spreads replicates over a process pool).
  At 100k battles L-BFGS-B stops on scipy's default relative-reduction test after ~19 iterations, so
  FastChat's own options (maxiter 100, gtol 1e-6) would give the same fits and times.

References run ``--ref-rounds`` resamples and project linearly: single fit + per-resample time x ``--rounds``.
Every timing is repeated ``--repeats`` times: the table gives the median and the min-max spread, and
"ratio" is the median over the median of the section's first arena row (above 1: the arena is faster).
evalica's inputs (names and its Winner values) are prepared outside its timing; the arena's timings
include reading the votes frame.

"max |diff|" compares point ratings with the arena's on the 400-point scale, mean 1000: the logistic
references are natural-log strengths (x 400 / ln 10, re-centred); evalica's scores are strengths pi with
P(i beats j) = pi_i / (pi_i + pi_j), so its rating is 400 * log10(pi), re-centred to mean 1000. The arena
adds an L2 penalty of 1e-3 on the natural-log strengths (the references use the same); evalica has none
and stops at its default tolerance 1e-6.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena import stats
from arena.stats.style import STYLE_FEATURES, style_control

L2 = 1e-3


def simulate(n_models: int, n_votes: int, seed: int) -> pd.DataFrame:
    """Votes from known strengths (spread ~ +-300 points) with 10% ties."""
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0.0, 150.0, n_models)
    a = rng.integers(0, n_models, n_votes)
    b = (a + rng.integers(1, n_models, n_votes)) % n_models
    p = 1.0 / (1.0 + 10.0 ** ((strengths[b] - strengths[a]) / 400.0))
    winner = np.where(rng.random(n_votes) < p, "model_a", "model_b")
    winner = np.where(rng.random(n_votes) < 0.1, "tie", winner)
    names = np.array([f"model-{k:02d}" for k in range(n_models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})


def with_style(votes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Add style counts: lengths 100-1500 characters and Poisson markdown counts, more of both for winners.

    The counts are drawn given the outcome, so the battles (and every BT row) stay the same.
    """
    rng = np.random.default_rng([seed, 1])
    n = len(votes)
    won_a = (votes["winner"] == "model_a").to_numpy()
    won_b = (votes["winner"] == "model_b").to_numpy()
    out = votes.copy()
    for side, won in (("a", won_a), ("b", won_b)):
        out[f"length_{side}"] = np.minimum(rng.integers(100, 1501, n) * np.where(won, 1.2, 1.0), 1500).astype(int)
        out[f"headers_{side}"] = rng.poisson(np.where(won, 1.3, 1.0))
        out[f"lists_{side}"] = rng.poisson(np.where(won, 3.5, 3.0))
        out[f"bold_{side}"] = rng.poisson(1.5, n)  # no effect: its coefficient should come out near 0
    return out


def design(votes: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-vote design matrix (+1 for model_a, -1 for model_b) and targets (1, 0.5, 0)."""
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    index = {m: k for k, m in enumerate(models)}
    x = np.zeros((len(votes), len(models)))
    rows = np.arange(len(votes))
    x[rows, votes["model_a"].map(index).to_numpy()] = 1.0
    x[rows, votes["model_b"].map(index).to_numpy()] = -1.0
    y = votes["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}).to_numpy()
    return models, x, y


def style_design(votes: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """FastChat's style design: model +-1 columns, then standardised normalised style differences."""
    models, x, y = design(votes)
    xa = votes[[f"{f}_a" for f in STYLE_FEATURES]].to_numpy(dtype=float)
    xb = votes[[f"{f}_b" for f in STYLE_FEATURES]].to_numpy(dtype=float)
    raw = (xa - xb) / (xa + xb + 1.0)
    return models, np.hstack([x, (raw - raw.mean(axis=0)) / raw.std(axis=0)]), y


def newton_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Plain IRLS on the per-vote logistic model (same penalty as arena.stats)."""
    n = x.shape[1]
    theta = np.zeros(n)
    gauge = np.full((n, n), 1.0 / n)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (y - p) - L2 * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + L2 * np.eye(n) + gauge
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def lbfgs_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy L-BFGS-B on the per-vote loss, as FastChat's rating_systems.fit_bt and fit_contextual_bt do."""
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        value = np.sum(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)) + L2 / 2 * theta @ theta
        return value, -(x.T @ (y - 1.0 / (1.0 + np.exp(-z)))) + L2 * theta

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 200, "gtol": 1e-8}).x


def to_scale(theta: np.ndarray) -> np.ndarray:
    """Natural-log strengths -> 400-point scale, mean 1000."""
    r = theta * 400.0 / math.log(10.0)
    return r - r.mean() + 1000.0


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Seconds of each of ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def resampled(
    fit: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, rounds: int, seed: int
) -> Callable[[], None]:
    """A call that refits ``rounds`` row resamples, the way FastChat's bootstraps do."""

    def run() -> None:
        rng = np.random.default_rng(seed)
        for _ in range(rounds):
            idx = rng.integers(0, len(y), len(y))
            fit(x[idx], y[idx])

    return run


def project(fit_s: list[float], boot_s: list[float], run: int, rounds: int) -> list[float]:
    """Seconds for a point fit plus ``rounds`` resamples, from runs of ``run`` resamples."""
    fit = statistics.median(fit_s)
    return [fit + s / max(run, 1) * rounds for s in boot_s]


def main() -> None:
    """Print one table: what, seconds (median, spread), ratio to the arena, max |diff| of point ratings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--ref-rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rounds, ref, reps = args.rounds, args.ref_rounds, args.repeats

    votes = with_style(simulate(args.models, args.votes, args.seed), args.seed)
    # (section, what, seconds per repeat, max |diff| or NaN)
    rows: list[tuple[str, str, list[float], float]] = []

    # ----------------------------------------------------------------------------------- single BT fit
    lb_s, board = timed(lambda: stats.pairwise_leaderboard(votes, n_boot=0, l2=L2), reps)
    point = board.set_index("model")["rating"].sort_index()
    models = list(point.index)
    ours = point.to_numpy()
    rows.append(("single fit", "arena pairwise_leaderboard(n_boot=0): refresh, incl. online Elo", lb_s, math.nan))
    bt_s, bt = timed(lambda: stats.bradley_terry(votes, l2=L2), reps)
    rows.append(
        ("single fit", "arena bradley_terry", bt_s, float(np.abs(np.array([bt[m] for m in models]) - ours).max()))
    )

    evalica: Any = None
    try:
        import evalica
    except ImportError:
        rows.append(("single fit", "evalica bradley_terry (skipped: make bench)", [math.nan], math.nan))
    if evalica is not None:
        xs, ys = votes["model_a"].tolist(), votes["model_b"].tolist()
        to_winner = {"model_a": evalica.Winner.X, "model_b": evalica.Winner.Y, "tie": evalica.Winner.Draw}
        winners = [to_winner[w] for w in votes["winner"]]
        ev_s, ev = timed(lambda: evalica.bradley_terry(xs, ys, winners), reps)
        ev_r = 400.0 * np.log10(ev.scores.reindex(models).to_numpy())
        ev_r = ev_r - ev_r.mean() + 1000.0
        rows.append(("single fit", "evalica bradley_terry (Rust)", ev_s, float(np.abs(ev_r - ours).max())))

    _, x, y = design(votes)
    refs = [
        ("per-vote logistic regression, numpy IRLS", newton_rows),
        ("per-vote logistic regression, scipy L-BFGS-B", lbfgs_rows),
    ]
    ref_fit: dict[str, list[float]] = {}
    for name, fit in refs:
        fit_s, theta = timed(lambda fit=fit: fit(x, y), reps)
        ref_fit[name] = fit_s
        rows.append(("single fit", name, fit_s, float(np.abs(to_scale(theta) - ours).max())))

    # --------------------------------------------------------------------------------- BT bootstraps
    section = f"{rounds} bootstraps"
    boot_s, boot = timed(lambda: stats.bt_bootstrap(votes, n_boot=rounds, seed=args.seed, l2=L2), reps)
    width = (boot.quantile(0.975) - boot.quantile(0.025)).mean()
    rows.append((section, "arena bt_bootstrap (cells + multinomial + batched Newton)", boot_s, math.nan))
    if evalica is not None:
        run_s, _ = timed(
            lambda: evalica.bootstrap(
                evalica.bradley_terry,
                xs,
                ys,
                winners,
                n_resamples=ref,
                bootstrap_method="percentile",
                random_state=args.seed,
            ),
            reps,
        )
        # evalica.bootstrap fits the full data once, then once per resample.
        per = [max(s - statistics.median(ev_s), 0.0) for s in run_s]
        rows.append(
            (
                section,
                f"evalica bootstrap, percentile ({ref} run, projected)",
                project(ev_s, per, ref, rounds),
                math.nan,
            )
        )
    for name, fit in refs:
        run_s, _ = timed(resampled(fit, x, y, ref, args.seed), reps)
        rows.append((section, f"{name} ({ref} run, projected)", project(ref_fit[name], run_s, ref, rounds), math.nan))

    # --------------------------------------------------------------------------------- style control
    sc_s, sc = timed(lambda: style_control(votes, n_boot=0, l2=L2), reps)
    sc_point = sc.ratings.set_index("model")["rating"].sort_index().to_numpy()
    rows.append(("style control, single fit", "arena style_control(n_boot=0)", sc_s, math.nan))
    _, sx, sy = style_design(votes)
    sfit_s, sparams = timed(lambda: lbfgs_rows(sx, sy), reps)
    s_diff = float(np.abs(to_scale(sparams[: len(models)]) - sc_point).max())
    coef_diff = float(np.abs(sparams[len(models) :] - sc.coefficients["coef"].to_numpy()).max())
    rows.append(("style control, single fit", "per-battle L-BFGS-B (FastChat compute_style_control)", sfit_s, s_diff))
    section = f"style control, {rounds} bootstraps"
    scb_s, _ = timed(lambda: style_control(votes, n_boot=rounds, seed=args.seed, l2=L2), reps)
    rows.append((section, "arena style_control (batched Newton, warm start)", scb_s, math.nan))
    run_s, _ = timed(resampled(lbfgs_rows, sx, sy, ref, args.seed), reps)
    rows.append(
        (section, f"L-BFGS-B refit per resample ({ref} run, projected)", project(sfit_s, run_s, ref, rounds), math.nan)
    )

    print(
        f"{args.models} models, {args.votes} battles, {rounds} bootstrap rounds, {reps} repeats "
        f"(mean 95% CI width from arena.stats: {width:.1f} points; style coefficients: "
        + ", ".join(f"{f} {c:+.3f}" for f, c in zip(sc.coefficients["feature"], sc.coefficients["coef"]))
        + f", max |diff| to the L-BFGS reference {coef_diff:.1e})\n"
    )
    head = ("what", "s (median)", "min-max", "ratio", "max |diff|")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    base: dict[str, float] = {}
    for section, what, seconds, diff in rows:
        med = statistics.median(seconds)
        base.setdefault(section, med)
        cells = (
            f"{section}: {what}",
            f"{med:.3f}" if med < 10 else f"{med:.1f}",
            f"{min(seconds):.3g}-{max(seconds):.3g}",
            f"{med / base[section]:.2f}" if med / base[section] < 10 else f"{med / base[section]:.0f}",
            "-" if math.isnan(diff) else f"{diff:.1e}",
        )
        print("| " + " | ".join(c.rjust(len(h)) if k else c for k, (c, h) in enumerate(zip(cells, head))) + " |")


if __name__ == "__main__":
    main()
