"""The one percentile bootstrap of the arena: one seeding rule, one CI helper, one chunk size.

Every bootstrap (mean scores, metrics, Bradley-Terry, Krippendorff's alpha, recall@k) draws from
``group_rng(seed, key)``: reproducible, and one group's interval does not move when another group is
added. Replicates are drawn in chunks of at most ``CHUNK_CELLS`` (replicate x unit) cells, so memory
stays bounded for many clusters or models (4M float64 cells = 32 MB per chunk).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

CHUNK_CELLS = 4_000_000


def group_rng(seed: int, key: object) -> np.random.Generator:
    """A generator seeded by (seed, group key): reproducible and independent of the other groups."""
    parts = key if isinstance(key, tuple) else (key,)
    return np.random.default_rng([seed, zlib.crc32(repr(tuple(str(p) for p in parts)).encode())])


def chunks(n_boot: int, cells_per_replicate: int) -> Iterator[int]:
    """Replicate counts per chunk, summing to ``n_boot``, each chunk within CHUNK_CELLS."""
    size = max(1, CHUNK_CELLS // max(1, cells_per_replicate))
    for start in range(0, n_boot, size):
        yield min(size, n_boot - start)


def percentile_ci(replicates: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (replicates); NaN replicates (a group that drew nothing) are skipped."""
    replicates = np.asarray(replicates, dtype=float)
    if replicates.size == 0:  # no replicates or no groups: NaN bounds of the right shape
        nan = np.full(replicates.shape[1:], np.nan)
        return nan, nan.copy()
    alpha = (1.0 - ci) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is a NaN bound, said by the value
        lo, hi = np.nanquantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def ci_rank(ci_low: Sequence[float], ci_high: Sequence[float]) -> np.ndarray:
    """FastChat-style rank: 1 + number of rows whose lower bound lies above this row's upper bound."""
    lo = np.asarray(ci_low, dtype=float)
    hi = np.asarray(ci_high, dtype=float)
    return 1 + (lo[None, :] > hi[:, None]).sum(axis=1)
