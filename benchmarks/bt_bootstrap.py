"""Time Bradley-Terry fit + bootstrap: arena.stats against plain per-vote logistic-regression references.

    .venv/bin/python benchmarks/bt_bootstrap.py [--models 20] [--votes 100000] [--rounds 1000] [--ref-rounds 20]

References resample rows and refit each replicate, the way FastChat's first notebooks did; they run
``--ref-rounds`` replicates and the table projects their time to ``--rounds``. "max |diff|" compares point
ratings with arena.stats (400-point scale, mean 1000). scipy's L-BFGS row appears only when scipy is installed.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from arena import stats

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
    """scipy L-BFGS-B on the per-vote loss, as FastChat's rating_systems.fit_bt does (weights = 1)."""
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        value = np.sum(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)) + L2 / 2 * theta @ theta
        return value, -(x.T @ (y - 1.0 / (1.0 + np.exp(-z)))) + L2 * theta

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 200, "gtol": 1e-8}).x


def to_scale(theta: np.ndarray) -> np.ndarray:
    r = theta * 400.0 / math.log(10.0)
    return r - r.mean() + 1000.0


def run_reference(
    fit: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, rounds: int, seed: int
) -> tuple[np.ndarray, float, float]:
    """(point ratings, fit seconds, bootstrap seconds for ``rounds`` replicates)."""
    start = time.perf_counter()
    point = to_scale(fit(x, y))
    fitted = time.perf_counter()
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        fit(x[idx], y[idx])
    return point, fitted - start, time.perf_counter() - fitted


def main() -> None:
    """Print one table row per implementation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--ref-rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    votes = simulate(args.models, args.votes, args.seed)
    rows = []

    start = time.perf_counter()
    point = stats.bradley_terry(votes, l2=L2)
    fitted = time.perf_counter()
    boot = stats.bt_bootstrap(votes, n_boot=args.rounds, seed=args.seed, l2=L2)
    done = time.perf_counter()
    models = list(point)
    ours = np.array([point[m] for m in models])
    width = (boot.quantile(0.975) - boot.quantile(0.025)).mean()
    rows.append(
        (
            "arena.stats (cells + multinomial + batched Newton)",
            fitted - start,
            args.rounds,
            done - fitted,
            done - fitted,
            0.0,
        )
    )

    _, x, y = design(votes)
    refs: list[tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = [
        ("per-vote logistic regression, numpy IRLS", newton_rows)
    ]
    try:
        import scipy  # noqa: F401

        refs.append(("per-vote logistic regression, scipy L-BFGS-B", lbfgs_rows))
    except ImportError:
        rows.append(
            (
                "per-vote logistic regression, scipy L-BFGS-B (skipped: no scipy)",
                math.nan,
                0,
                math.nan,
                math.nan,
                math.nan,
            )
        )
    for name, fit in refs:
        ref_point, fit_s, boot_s = run_reference(fit, x, y, args.ref_rounds, args.seed)
        projected = boot_s / max(args.ref_rounds, 1) * args.rounds
        rows.append((name, fit_s, args.ref_rounds, boot_s, projected, float(np.abs(ref_point - ours).max())))

    print(
        f"{args.models} models, {args.votes} votes, {args.rounds} bootstrap rounds "
        f"(mean 95% CI width from arena.stats: {width:.1f} points)\n"
    )
    head = ("implementation", "fit s", "rounds run", "boot s", f"s / {args.rounds} rounds", "max abs diff")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for name, fit_s, n_run, boot_s, projected, diff in rows:
        cells = (name, f"{fit_s:.3f}", str(n_run), f"{boot_s:.2f}", f"{projected:.1f}", f"{diff:.1e}")
        print("| " + " | ".join(c.rjust(len(h)) if k else c for k, (c, h) in enumerate(zip(cells, head))) + " |")


if __name__ == "__main__":
    main()
