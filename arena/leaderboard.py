"""Leaderboards from the store: adapters from its frames to the inputs of arena/stats.py, filters, every table at once.

The store keeps what happened (``choice`` a|b|tie|both_bad, ``a_position`` left|right, raw answers); stats
wants model-level outcomes (``winner``, ``left_model``) and per-answer metrics. The adapters bridge the two
at read time, joining each dialog's category from the loaded eval sets and computing the repetition of
earlier turns with arena/metrics.py, so every number is reproducible from ratings.db and the eval sets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from arena import agreement, stats
from arena.dialogs import Dialog
from arena.metrics import Splitter, score_step, split_words

if TYPE_CHECKING:
    from arena.store import Store

WINNER_OF_CHOICE = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "both_bad"}
SCORE_GROUPS = ("eval_set", "category", "round")
# Group labels for ratings outside any round (replay) and dialogs without a category.
NO_GROUP = {"round": "(no round)", "category": "(none)"}
# Agreement bootstraps resample units in chunks of this many (replicate x unit) cells to bound memory.
_CHUNK_CELLS = 2_000_000

DialogIndex = Mapping[tuple[str, str], Dialog]


@dataclass(frozen=True)
class Filters:
    """Which slice of the store a leaderboard covers; None means everything."""

    round: str | None = None
    eval_set: str | None = None
    category: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"round": self.round, "eval_set": self.eval_set, "category": self.category}


def index_dialogs(dialogs: Iterable[Dialog]) -> dict[tuple[str, str], Dialog]:
    """Dialogs by (eval_set, dialog id), the key the store records with every generation."""
    return {(d.eval_set, d.id): d for d in dialogs}


def _categories(frame: pd.DataFrame, dialogs: DialogIndex) -> pd.Series:
    keys = zip(frame["eval_set"], frame["dialog_id"])
    return pd.Series([getattr(dialogs.get(k), "category", None) for k in keys], index=frame.index, dtype=object)


def _answer_key(text: Any, tool_calls: Any) -> str:
    """Short hash of what an annotator saw: identical answers stored in different contexts are one item."""
    payload = json.dumps([text or "", tool_calls or []], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- adapters

def ratings_input(ratings: pd.DataFrame, generations: pd.DataFrame, dialogs: DialogIndex) -> pd.DataFrame:
    """The store's ratings frame as stats' ``ratings`` input, plus category and the rated answer's key."""
    keys = {gid: _answer_key(text, calls)
            for gid, text, calls in zip(generations["generation_id"], generations["text"], generations["tool_calls"])}
    out = ratings.assign(category=_categories(ratings, dialogs),
                         answer=ratings["generation_id"].map(keys),
                         score=ratings["score"].astype(float))
    return out[["model", "dialog_id", "eval_set", "category", "round", "round_id", "turn_index", "answer",
                "annotator", "score", "generation_id"]]


def votes_input(votes: pd.DataFrame, dialogs: DialogIndex) -> pd.DataFrame:
    """The store's votes frame as stats' ``votes`` input: choice -> winner, a_position -> left_model."""
    unknown = set(votes["choice"]) - set(WINNER_OF_CHOICE)
    if unknown:
        raise ValueError(f"unknown vote choice(s) {sorted(unknown)}; expected {sorted(WINNER_OF_CHOICE)}")
    bad_position = set(votes["a_position"]) - {"left", "right"}
    if bad_position:
        raise ValueError(f"unknown a_position value(s) {sorted(bad_position)}; expected left or right")
    left = np.where(votes["a_position"] == "left", votes["model_a"], votes["model_b"])
    out = votes.assign(winner=votes["choice"].map(WINNER_OF_CHOICE), left_model=left,
                       item=votes["item_key"], category=_categories(votes, dialogs))
    return out[["round", "round_id", "item", "eval_set", "dialog_id", "turn_index", "category", "model_a",
                "model_b", "left_model", "winner", "annotator", "vote_id"]]


def _step_metrics(dialog: Dialog | None, turn_index: int, text: str, calls: Any,
                  splitter: Splitter) -> dict[str, Any]:
    """Metrics score_step computes for one stored answer; empty when the answer has no GT turn to compare with."""
    if dialog is None or not 0 <= turn_index < len(dialog.turns) or dialog.turns[turn_index].role != "assistant":
        return {}
    m = score_step(dialog, turn_index, text or "", list(calls or []), splitter)
    earlier = any(t.role == "assistant" and t.content for t in dialog.turns[:turn_index])
    # Without an earlier assistant turn there is nothing to repeat: NaN, not a 0 that would dilute the mean.
    rep = {"repetition": m.repetition, "repeats_earlier_turn": float(m.repeats_earlier_turn)} if earlier else {}
    return {"similarity": m.similarity, "tool_name_match": m.tool_name_match, "tool_args_match": m.tool_args_match,
            **rep}


def _comparable(generations: pd.DataFrame) -> pd.Series:
    """Not a live chat: those have no GT and each model saw a different conversation."""
    return ~generations["context"].astype(str).str.startswith("live")


def generations_input(generations: pd.DataFrame, dialogs: DialogIndex,
                      splitter: Splitter = split_words) -> pd.DataFrame:
    """Stored answers as stats' ``generations`` input; live chats and failed answers are left out.

    Repetition is computed here from the dialog, and GT metrics missing in the store (e.g. answers
    pre-generated for a round) are filled the same way; stored values win so the UI and the table agree.
    """
    gen = generations[_comparable(generations) & generations["error"].isna()].copy()
    # Kiwi segmentation dominates the cost, and the same texts recur (GT and earlier turns for every model,
    # identical answers stored per annotator): segment each text once and score each distinct answer once.
    split = functools.lru_cache(maxsize=None)(splitter)
    memo: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    rows = []
    for e, d, t, x, c in zip(gen["eval_set"], gen["dialog_id"], gen["turn_index"], gen["text"], gen["tool_calls"]):
        key = (e, d, int(t), _answer_key(x, c))
        if key not in memo:
            memo[key] = _step_metrics(dialogs.get((e, d)), int(t), x, c, split)
        rows.append(memo[key])
    computed = pd.DataFrame(
        rows,
        index=gen.index,
        columns=["similarity", "tool_name_match", "tool_args_match", "repetition", "repeats_earlier_turn"],
    ).astype(float)
    for name in ("similarity", "tool_name_match", "tool_args_match"):
        # Nullable booleans: to_numeric keeps <NA> as NaN so fillna can see it.
        gen[name] = pd.to_numeric(gen[name].astype(object), errors="coerce").astype(float).fillna(computed[name])
    gen["repetition"] = computed["repetition"]
    gen["repeats_earlier_turn"] = computed["repeats_earlier_turn"]
    gen["category"] = _categories(gen, dialogs)
    return gen.reset_index(drop=True)


def apply_filters(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows of ``frame`` in the chosen round (by name or id), eval set and category."""
    keep = pd.Series(True, index=frame.index)
    if filters.round:
        by_name = frame["round"].eq(filters.round)
        by_id = frame["round_id"].astype("string").eq(filters.round).fillna(False).astype(bool)
        keep &= by_name | by_id
    if filters.eval_set:
        keep &= frame["eval_set"] == filters.eval_set
    if filters.category:
        keep &= frame["category"] == filters.category
    return frame[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------- agreement

def _alpha_from_coincidences(coincidence: np.ndarray, delta2: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha for a stack of coincidence matrices (B, C, C)."""
    marginals = coincidence.sum(axis=2)
    n = marginals.sum(axis=1)
    observed = (coincidence * delta2).sum(axis=(1, 2)) / n
    expected = np.einsum("bi,bj,ij->b", marginals, marginals, delta2) / (n * (n - 1.0))
    return 1.0 - np.divide(observed, expected, out=np.full_like(n, np.nan), where=expected > 0)


def alpha_bootstrap(judgements: pd.DataFrame, units: Sequence[str], *, metric: str, n_boot: int, seed: int,
                    ci: float = 0.95) -> tuple[float, float, float]:
    """(alpha, ci_low, ci_high) resampling units with replacement; nominal or interval metric.

    Each unit's coincidences are summed once; a replicate only reweights units, so the whole bootstrap is one
    matrix product per chunk rather than a Krippendorff computation per replicate.
    """
    if metric not in ("nominal", "interval"):
        raise ValueError(f"alpha_bootstrap supports nominal and interval, not {metric!r}")
    df = judgements.dropna(subset=["value"])
    if df.empty:
        return math.nan, math.nan, math.nan
    unit_codes = df.groupby(list(units), sort=True, dropna=False).ngroup().to_numpy()
    values = df["value"].to_numpy()
    categories, value_codes = np.unique(values.astype(str) if metric == "nominal" else values.astype(float),
                                        return_inverse=True)
    counts = np.zeros((unit_codes.max() + 1, len(categories)))
    np.add.at(counts, (unit_codes, value_codes), 1.0)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if len(m) == 0:
        return math.nan, math.nan, math.nan
    per_unit = (np.einsum("ui,uj->uij", counts, counts) - np.einsum("ui,ij->uij", counts, np.eye(len(categories))))
    per_unit = (per_unit / (m - 1.0)[:, None, None]).reshape(len(m), -1)
    if metric == "nominal":
        delta2 = 1.0 - np.eye(len(categories))
    else:
        v = categories.astype(float)
        delta2 = (v[:, None] - v[None, :]) ** 2
    shape = (len(categories), len(categories))
    point = float(_alpha_from_coincidences(per_unit.sum(axis=0).reshape(1, *shape), delta2)[0])
    k = len(m)
    if n_boot <= 0 or k < 2:
        return point, math.nan, math.nan
    rng = stats.group_rng(seed, ("alpha", metric, *units))
    replicates = []
    chunk = max(1, _CHUNK_CELLS // k)
    for start in range(0, n_boot, chunk):
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=min(chunk, n_boot - start)).astype(float)
        replicates.append(_alpha_from_coincidences((weights @ per_unit).reshape(-1, *shape), delta2))
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.nanquantile(np.concatenate(replicates), [alpha, 1.0 - alpha])
    return point, float(lo), float(hi)


# Ratings agree on one answer: the same model text for the same step, whichever context stored it.
RATING_UNITS = ("model", "eval_set", "dialog_id", "turn_index", "answer")
VOTE_UNITS = ("round", "item")


def agreement_table(ratings: pd.DataFrame, votes: pd.DataFrame, *, n_boot: int, seed: int,
                    ci: float = 0.95) -> pd.DataFrame:
    """Krippendorff's alpha with a unit-bootstrap CI: interval for 1-5 scores, nominal for blind votes."""
    rows = []
    rating_frame = (ratings.dropna(subset=["score"]).rename(columns={"score": "value"})
                    .drop_duplicates([*RATING_UNITS, "annotator"], keep="last"))
    # The chosen model's name, as agreement.vote_agreement does: annotators who saw the pair swapped still agree.
    chosen = np.select([votes["winner"] == "model_a", votes["winner"] == "model_b"],
                       [votes["model_a"].astype(str), votes["model_b"].astype(str)], votes["winner"].astype(str))
    vote_frame = votes.assign(value=chosen).drop_duplicates([*VOTE_UNITS, "annotator"], keep="last")
    for kind, frame, units, metric, summary in (
        ("ratings", rating_frame, RATING_UNITS, "interval", agreement.rating_agreement(ratings, unit=RATING_UNITS)),
        ("votes", vote_frame, VOTE_UNITS, "nominal", agreement.vote_agreement(votes, unit=VOTE_UNITS)),
    ):
        alpha, lo, hi = alpha_bootstrap(frame, units, metric=metric, n_boot=n_boot, seed=seed, ci=ci)
        rows.append({"judgements": kind, "metric": metric, "alpha": summary["alpha"], "ci_low": lo, "ci_high": hi,
                     "n_units": summary["n_units"], "n_judgements": summary["n_judgements"],
                     "n_annotators": summary["n_annotators"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ tables

@dataclass
class Leaderboards:
    """Every leaderboard table for one slice of the store, plus how it was computed."""

    filters: Filters
    settings: dict[str, Any]
    counts: dict[str, int]
    scores: pd.DataFrame
    scores_by: dict[str, pd.DataFrame]
    pairwise: pd.DataFrame
    win_rate: pd.DataFrame
    battles: pd.DataFrame
    position_bias: pd.DataFrame
    annotators: pd.DataFrame
    agreement: pd.DataFrame
    metrics: pd.DataFrame
    models: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table as a flat frame, in display order (matrices get their row model as a column)."""
        return {
            "scores": self.scores,
            **{f"scores_by_{k}": v for k, v in self.scores_by.items()},
            "pairwise": self.pairwise,
            "win_rate": self.win_rate.reset_index(),
            "battles": self.battles.reset_index(),
            "position_bias": self.position_bias,
            "annotators": self.annotators,
            "agreement": self.agreement,
            "metrics": self.metrics,
        }


def _failed_count(generations: pd.DataFrame, dialogs: DialogIndex, filters: Filters) -> int:
    """Failed answers in the slice: left out of the metrics, but worth knowing about."""
    failed = generations[_comparable(generations) & generations["error"].notna()]
    return len(apply_filters(failed.assign(category=_categories(failed, dialogs)), filters))


def _position_bias(votes: pd.DataFrame, ci: float) -> pd.DataFrame:
    """Overall left-share row first, then one row per round."""
    overall = agreement.position_bias(votes, ci=ci).assign(round="(all)")
    by_round = agreement.position_bias(votes, by=["round"], ci=ci) if len(votes) else overall.iloc[:0]
    out = pd.concat([overall, by_round], ignore_index=True)
    return out[["round", *[c for c in out.columns if c != "round"]]]


def build_leaderboards(store: "Store", dialogs: Iterable[Dialog], *, round: str | None = None,
                       eval_set: str | None = None, category: str | None = None, n_boot: int = 1000, seed: int = 0,
                       both_bad: stats.BothBad = "tie", anchor: str | None = None, ci: float = 0.95,
                       splitter: Splitter = split_words) -> Leaderboards:
    """Every table for the chosen slice of ``store``; the same arguments always give the same numbers."""
    index = index_dialogs(dialogs)
    filters = Filters(round or None, eval_set or None, category or None)
    gen_raw = store.generations_frame()
    ratings = apply_filters(ratings_input(store.ratings_frame(), gen_raw, index), filters)
    votes = apply_filters(votes_input(store.votes_frame(), index), filters)
    gens = apply_filters(generations_input(gen_raw, index, splitter), filters)
    boot = {"n_boot": n_boot, "seed": seed, "ci": ci}
    labelled = ratings.fillna(NO_GROUP)  # "(no round)" reads better than a blank group key
    scores_by = {g: stats.score_leaderboard(labelled, by=(g, "model"), **boot) for g in SCORE_GROUPS}
    pairwise = stats.pairwise_leaderboard(votes, both_bad=both_bad, anchor_model=anchor, **boot)
    order = list(pairwise["model"])
    models = sorted(set(ratings["model"]) | set(votes["model_a"]) | set(votes["model_b"]) | set(gens["model"]))
    return Leaderboards(
        filters=filters,
        settings={**boot, "both_bad": both_bad, "anchor": anchor, "scale": "400-point; anchor model or mean = 1000",
                  "online_elo": "order-dependent (votes in the order cast), for comparison only"},
        counts={"ratings": len(ratings), "votes": len(votes), "generations": len(gens),
                "failed_generations": _failed_count(gen_raw, index, filters), "models": len(models)},
        scores=stats.score_leaderboard(ratings, by=("model",), **boot),
        scores_by=scores_by,
        pairwise=pairwise,
        win_rate=stats.win_rate_matrix(votes, both_bad=both_bad, order=order),
        battles=stats.battle_count_matrix(votes, both_bad=both_bad, order=order),
        position_bias=_position_bias(votes, ci),
        annotators=agreement.annotator_summary(votes, ratings),
        agreement=agreement_table(ratings, votes, n_boot=n_boot, seed=seed, ci=ci),
        metrics=stats.metric_summary(gens, by=("model",), **boot),
        models=models,
    )


# ----------------------------------------------------------------------------------------------- display

def fmt_number(value: Any) -> str:
    """A number as the tables show it: 1 decimal from 100 up, 3 below; a dash for missing values."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def _ci_text(lo: Any, hi: Any) -> str:
    return "–" if fmt_number(lo) == "–" else f"[{fmt_number(float(lo))}, {fmt_number(float(hi))}]"


def display_table(frame: pd.DataFrame, ci_label: str = "95% CI") -> pd.DataFrame:
    """Every cell as text; a ci_low/ci_high pair becomes one "[lo, hi]" column right after its value."""
    columns = [c for c in frame.columns if c not in ("ci_low", "ci_high")]
    out = pd.DataFrame({c: [fmt_number(v) for v in frame[c]] for c in columns}, columns=columns)
    if {"ci_low", "ci_high"} <= set(frame.columns):
        value = next((c for c in ("rating", "mean", "value", "alpha", "left_share") if c in columns), columns[-1])
        cis = [_ci_text(lo, hi) for lo, hi in zip(frame["ci_low"], frame["ci_high"])]
        out.insert(columns.index(value) + 1, ci_label, cis)
    return out


def metrics_wide(metrics: pd.DataFrame) -> pd.DataFrame:
    """metric_summary's long rows as one text row per model: "value [lo, hi]" per metric, plus the answer count."""
    if metrics.empty:
        return pd.DataFrame(columns=["model", "answers"])
    text = [fmt_number(v) + ("" if fmt_number(lo) == "–" else f" {_ci_text(lo, hi)}")
            for v, lo, hi in zip(metrics["value"], metrics["ci_low"], metrics["ci_high"])]
    order = list(dict.fromkeys(metrics["metric"]))
    wide = metrics.assign(text=text).pivot(index="model", columns="metric", values="text")[order]
    answers = metrics.groupby("model")["n"].max().rename("answers").astype(str)
    return wide.join(answers).reset_index()[["model", "answers", *order]]
