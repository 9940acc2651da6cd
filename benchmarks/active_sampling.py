"""Votes a blind round needs until its ranking is settled: uniform vs active pair choice, simulated annotators.

    .venv/bin/python benchmarks/active_sampling.py [--models 10 30] [--seeds 20] [--spacing 50] [--ties 0.1]
        [--batch 10] [--min-pair-votes 2] [--max-votes 200000] [--n-boot 200] [--growth 1.05] [--coarse 4]
        [--jobs 2] [--json]

Simulated annotators vote from known Bradley-Terry strengths, evenly spaced ``--spacing`` points apart on the
400-point scale (assigned to model names in a random order per seed): P(i beats j) = 1 / (1 + 10^((s_j - s_i)
/ 400)), and with probability ``--ties`` a vote is a tie whatever the strengths (ties pull fitted gaps in by
about that share). Each pair of a vote is shown with a random side as model_a.

uniform  what a uniform round does: it serves the least-judged item first, so pairs come round evenly; here
         every pair once in a random permutation, reshuffled each cycle.
active   the product's own rule (arena.stats.active: win_matrix, Estimate.fit, pair_priorities with
         ``--min-pair-votes``). The estimate is refitted every ``--batch`` votes, like that many annotators
         voting between refreshes; each batch gives one vote to each of its ``--batch`` highest-priority pairs
         (ties at random), spreading the batch the way refitting after each vote is meant to instead of piling
         it on one pair. A real round refits on every request: that is ``--batch 1`` (about 10x the fits, too
         slow for the default run at 30 models), and it can give quite different numbers when the rule keeps
         choosing the same few pairs. The simulation has unlimited items per pair; a real round's per-item
         quotas cap how much one pair can get.

Criteria, checked with the leaderboard's own intervals (arena.stats.pairwise_leaderboard, ``--n-boot``
bootstraps) at checkpoints growing by ``--growth`` (votes = the first checkpoint where it holds, so each number
is rounded up by at most that factor):
  separated   every adjacent pair of the leaderboard's (estimated) order has separate 95% intervals
              (arena.stats.active.separation); "wrong order" = runs whose order at that point was not the true one
  ±N points   the widest model interval has half-width (ci_high - ci_low) / 2 under ``--half-width`` (25)
Leaderboards cost most of a run, so every ``--coarse``-th checkpoint is scanned and, once a criterion holds
there, the checkpoints since its last failing scanned one are checked in order. A run stops when both hold or
at ``--max-votes``; capped runs count at the cap (the mean is then a lower bound, shown as ">=").
"uniform/active" is the ratio of mean (and of median) votes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena.stats import pairwise_leaderboard  # noqa: E402
from arena.stats.active import Estimate, pair_priorities, separation, win_matrix  # noqa: E402

WINNER_NAMES = np.array(["model_a", "model_b", "tie"], dtype=object)
CRITERIA = ("separated", "half-width")


@dataclass(frozen=True)
class Settings:
    """Everything one simulated run depends on besides (models, method, seed)."""

    spacing: float
    ties: float
    batch: int
    min_pair_votes: int
    max_votes: int
    n_boot: int
    growth: float
    coarse: int
    half_width: float


@dataclass
class Run:
    """Outcome of one simulated round: votes until each criterion held (None: not within the cap)."""

    models: int
    method: str
    seed: int
    votes: dict[str, int | None]
    wrong_order: bool | None  # at the checkpoint where "separated" first held
    seconds: float


class Votes:
    """Votes cast so far as index arrays; ``outcomes`` is the {(a, b): (score of a, votes)} the queue builds."""

    def __init__(self, names: list[str], strengths: np.ndarray, ties: float, rng: np.random.Generator) -> None:
        self.names, self.strengths, self.ties, self.rng = names, strengths, ties, rng
        self.a: list[int] = []
        self.b: list[int] = []
        self.winner: list[int] = []  # index into WINNER_NAMES
        self.outcomes: dict[tuple[str, str], tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self.a)

    def cast(self, i: int, j: int) -> None:
        """One annotator's vote on the pair (i, j), shown with a random side as model_a."""
        a, b = (i, j) if self.rng.random() < 0.5 else (j, i)
        if self.rng.random() < self.ties:
            w, score_a = 2, 0.5
        else:
            p = 1.0 / (1.0 + 10.0 ** ((self.strengths[b] - self.strengths[a]) / 400.0))
            w, score_a = (0, 1.0) if self.rng.random() < p else (1, 0.0)
        self.a.append(a)
        self.b.append(b)
        self.winner.append(w)
        # Keys sorted by name, as arena.rounds.queue.pair_outcomes names them.
        na, nb = self.names[a], self.names[b]
        key, s = ((na, nb), score_a) if na < nb else ((nb, na), 1.0 - score_a)
        old = self.outcomes.get(key, (0.0, 0.0))
        self.outcomes[key] = (old[0] + s, old[1] + 1.0)

    def frame(self, k: int) -> pd.DataFrame:
        """The first ``k`` votes in the columns pairwise_leaderboard reads."""
        names = np.array(self.names, dtype=object)
        return pd.DataFrame(
            {
                "model_a": names[np.asarray(self.a[:k])],
                "model_b": names[np.asarray(self.b[:k])],
                "winner": WINNER_NAMES[np.asarray(self.winner[:k])],
            }
        )


def uniform_pairs(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """One cycle of a uniform round: every pair once, in a random order."""
    pairs = list(combinations(range(n), 2))
    return [pairs[k] for k in rng.permutation(len(pairs))]


def active_pairs(votes: Votes, batch: int, min_pair_votes: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """The ``batch`` highest-priority pairs of the product's rule from the votes so far (ties at random)."""
    names = votes.names
    estimate = Estimate.fit(names, win_matrix(names, votes.outcomes))
    priority = pair_priorities(estimate, min_pair_votes=min_pair_votes)
    keys = list(priority)
    values = np.array([priority[k] for k in keys])
    order = np.lexsort((rng.random(len(keys)), -values))  # last key sorts first: priority, then a random draw
    index = {m: k for k, m in enumerate(names)}
    return [(index[keys[k][0]], index[keys[k][1]]) for k in order[:batch]]


def checkpoints(start: int, growth: float, cap: int) -> list[int]:
    """Vote counts at which the criteria are checked: from ``start``, growing geometrically, ending at ``cap``."""
    out = [min(start, cap)]
    while out[-1] < cap:
        out.append(min(cap, max(out[-1] + 1, math.ceil(out[-1] * growth))))
    return out


def simulate(n_models: int, method: str, seed: int, s: Settings) -> Run:
    """One simulated round: vote until both criteria hold at a checkpoint or the cap is reached."""
    started = time.perf_counter()
    rng = np.random.default_rng([seed, n_models])
    names = [f"m{k:02d}" for k in range(n_models)]
    # Strongest first on the true scale, assigned to names at random so that name order (the tie-break of
    # both the leaderboard and pair_priorities) says nothing about strength.
    ladder = 1000.0 + s.spacing * ((n_models - 1) / 2.0 - np.arange(n_models))
    strengths = ladder[rng.permutation(n_models)]
    true_order = [names[k] for k in np.argsort(-strengths)]
    votes = Votes(names, strengths, s.ties, rng)
    pending: list[tuple[int, int]] = []
    # Both methods give every pair a vote in the first n_pairs votes; before that some model may have none.
    fine = checkpoints(n_models * (n_models - 1) // 2, s.growth, s.max_votes)
    results: dict[int, dict[str, bool]] = {}

    def check(idx: int) -> dict[str, bool]:
        # Votes are only ever appended, so an earlier checkpoint reads a prefix of the same sequence.
        nonlocal pending
        if idx in results:
            return results[idx]
        k = fine[idx]
        while len(votes) < k:
            if not pending:
                if method == "uniform":
                    pending = uniform_pairs(n_models, rng)
                else:
                    pending = active_pairs(votes, s.batch, s.min_pair_votes, rng)
            votes.cast(*pending.pop(0))
        table = pairwise_leaderboard(votes.frame(k), n_boot=s.n_boot, seed=seed)
        ok = len(table) == n_models and not table[["ci_low", "ci_high"]].isna().any().any()
        results[idx] = {
            "separated": ok and bool(separation(table, k)["separated"].all()),
            "half-width": ok and float(((table["ci_high"] - table["ci_low"]) / 2.0).max()) < s.half_width,
            "wrong_order": list(table["model"]) != true_order,
        }
        return results[idx]

    # A leaderboard per fine checkpoint costs most of the run, so scan every ``coarse``-th one and, once a
    # criterion holds there, take the first fine checkpoint after its last failing coarse one where it holds.
    found: dict[str, int | None] = dict.fromkeys(CRITERIA)
    wrong: bool | None = None
    last_fail = dict.fromkeys(CRITERIA, -1)
    for idx in [*range(0, len(fine) - 1, s.coarse), len(fine) - 1]:
        now = check(idx)
        for criterion in CRITERIA:
            if found[criterion] is not None:
                continue
            if not now[criterion]:
                last_fail[criterion] = idx
                continue
            first = next(j for j in range(last_fail[criterion] + 1, idx + 1) if check(j)[criterion])
            found[criterion] = fine[first]
            if criterion == "separated":
                wrong = check(first)["wrong_order"]
        if all(v is not None for v in found.values()):
            break
    return Run(n_models, method, seed, found, wrong, time.perf_counter() - started)


def _simulate(job: tuple[int, str, int, Settings]) -> Run:
    return simulate(*job)


def summarise(runs: list[Run], models: list[int], max_votes: int) -> list[dict[str, Any]]:
    """One row per (models, method, criterion): mean, std, median, min, max of votes (capped runs at the cap)."""
    rows: list[dict[str, Any]] = []
    for n in models:
        for criterion in CRITERIA:
            means: dict[str, float] = {}
            medians: dict[str, float] = {}
            for method in ("uniform", "active"):
                got = [r for r in runs if r.models == n and r.method == method]
                raw = [r.votes[criterion] for r in got]
                capped = sum(v is None for v in raw)
                v = np.array([max_votes if x is None else x for x in raw], dtype=float)
                means[method] = float(v.mean()) if len(v) else math.nan
                medians[method] = float(np.median(v)) if len(v) else math.nan
                row: dict[str, Any] = {
                    "models": n,
                    "method": method,
                    "criterion": criterion,
                    "runs": len(got),
                    "mean": means[method],
                    "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                    "median": medians[method],
                    "min": float(v.min()) if len(v) else None,
                    "max": float(v.max()) if len(v) else None,
                    "capped": capped,
                    "mean_is_lower_bound": capped > 0,
                    "wrong_order": (
                        sum(bool(r.wrong_order) for r in got if r.votes[criterion] is not None)
                        if criterion == "separated"
                        else None
                    ),
                    "votes": raw,
                    "seconds": float(sum(r.seconds for r in got)),
                }
                rows.append(row)
            # Medians too: one capped run moves a mean a long way.
            for key, stat in (("uniform_over_active", means), ("uniform_over_active_median", medians)):
                ratio = stat["uniform"] / stat["active"] if stat["active"] > 0 else math.nan
                for row in rows[-2:]:
                    row[key] = ratio if math.isfinite(ratio) else None
    return rows


def _clean(value: Any) -> Any:
    # Valid JSON for any parser: NaN and infinities become null (json.dumps(allow_nan=False) guards it).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def print_table(rows: list[dict[str, Any]], half_width: float) -> None:
    """Markdown table, one row per (models, method, criterion)."""
    head = (
        "models",
        "method",
        "criterion",
        "votes mean",
        "std",
        "median",
        "min–max",
        "uniform/active (mean)",
        "(median)",
        "capped",
        "wrong order",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for r in rows:
        label = "adjacent separated" if r["criterion"] == "separated" else f"widest ±{half_width:g}"
        ratio, ratio_median = r["uniform_over_active"], r["uniform_over_active_median"]
        cells = (
            str(r["models"]),
            r["method"],
            label,
            (">=" if r["mean_is_lower_bound"] else "") + f"{r['mean']:,.0f}",
            "-" if r["std"] is None else f"{r['std']:,.0f}",
            "-" if r["median"] is None else f"{r['median']:,.0f}",
            "-" if r["min"] is None else f"{r['min']:,.0f}–{r['max']:,.0f}",
            "-" if ratio is None else f"{ratio:.2f}x",
            "-" if ratio_median is None else f"{ratio_median:.2f}x",
            f"{r['capped']}/{r['runs']}",
            "-" if r["wrong_order"] is None else f"{r['wrong_order']}/{r['runs'] - r['capped']}",
        )
        print("| " + " | ".join(c.rjust(len(h)) if k > 2 else c for k, (c, h) in enumerate(zip(cells, head))) + " |")


def main() -> None:
    """Simulate every (models, method, seed), then print the table (or one JSON object with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=50.0, help="points between neighbouring true strengths")
    parser.add_argument("--ties", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=10, help="active: votes between refits of the estimate")
    parser.add_argument("--min-pair-votes", type=int, default=2)
    parser.add_argument("--max-votes", type=int, default=200_000)
    parser.add_argument("--n-boot", type=int, default=200, help="bootstraps of the leaderboard at each checkpoint")
    parser.add_argument("--growth", type=float, default=1.05, help="checkpoint growth factor")
    parser.add_argument("--coarse", type=int, default=4, help="scan every n-th checkpoint, then refine")
    parser.add_argument("--half-width", type=float, default=25.0)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.growth <= 1.0 or min(args.batch, args.seeds, args.coarse) < 1:
        parser.error("--growth must be > 1, --batch, --seeds and --coarse >= 1")

    settings = Settings(
        args.spacing,
        args.ties,
        args.batch,
        args.min_pair_votes,
        args.max_votes,
        args.n_boot,
        args.growth,
        args.coarse,
        args.half_width,
    )
    # Longest jobs first, so that two workers finish together.
    jobs = [
        (n, m, seed, settings)
        for n in sorted(args.models, reverse=True)
        for m in ("uniform", "active")
        for seed in range(args.seeds)
    ]
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(_simulate, jobs))
    else:
        runs = [_simulate(j) for j in jobs]
    wall = time.perf_counter() - start
    rows = summarise(runs, list(args.models), args.max_votes)

    if args.json:
        out = {"settings": vars(args), "wall_s": wall, "rows": rows}
        print(json.dumps(_clean(out), allow_nan=False, ensure_ascii=False))
        return
    print(
        f"{args.seeds} seeds, strengths {args.spacing:g} points apart, {args.ties:.0%} ties, active batch "
        f"{args.batch}, min {args.min_pair_votes} votes per pair, {args.n_boot} bootstraps per checkpoint "
        f"(x{args.growth:g}), cap {args.max_votes:,} votes; {wall:.0f} s wall with {args.jobs} jobs\n"
    )
    print_table(rows, args.half_width)


if __name__ == "__main__":
    main()
