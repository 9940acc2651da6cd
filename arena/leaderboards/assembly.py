"""Every leaderboard table at once, from the store and the loaded eval sets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from arena import stats
from arena.core.dialogs import Dialog
from arena.core.metrics import Splitter, split_words
from arena.leaderboards.frames import (
    NO_GROUP,
    SCORE_GROUPS,
    DialogIndex,
    Filters,
    _categories,
    _comparable,
    apply_filters,
    generations_input,
    index_dialogs,
    ratings_input,
    votes_input,
)
from arena.stats import agreement
from arena.stats.agreement import alpha_bootstrap
from arena.stats.style import StyleControl, style_control

if TYPE_CHECKING:
    from arena.store import Store


# Ratings agree on one answer: the same model text for the same step, whichever context stored it.
RATING_UNITS = ("model", "eval_set", "dialog_id", "turn_index", "answer")
VOTE_UNITS = ("round", "item")


def agreement_table(
    ratings: pd.DataFrame, votes: pd.DataFrame, *, n_boot: int, seed: int, ci: float = 0.95
) -> pd.DataFrame:
    """Krippendorff's alpha with a unit-bootstrap CI: interval for 1-5 scores, nominal for blind votes."""
    rows = []
    rating_frame = (
        ratings.dropna(subset=["score"])
        .rename(columns={"score": "value"})
        .drop_duplicates([*RATING_UNITS, "annotator"], keep="last")
    )
    # The chosen model's name, as agreement.vote_agreement does: annotators who saw the pair swapped still agree.
    chosen = np.select(
        [votes["winner"] == "model_a", votes["winner"] == "model_b"],
        [votes["model_a"].astype(str), votes["model_b"].astype(str)],
        votes["winner"].astype(str),
    )
    vote_frame = votes.assign(value=chosen).drop_duplicates([*VOTE_UNITS, "annotator"], keep="last")
    for kind, frame, units, metric, summary in (
        ("ratings", rating_frame, RATING_UNITS, "interval", agreement.rating_agreement(ratings, unit=RATING_UNITS)),
        ("votes", vote_frame, VOTE_UNITS, "nominal", agreement.vote_agreement(votes, unit=VOTE_UNITS)),
    ):
        alpha, lo, hi = alpha_bootstrap(frame, units, metric=metric, n_boot=n_boot, seed=seed, ci=ci)
        rows.append(
            {
                "judgements": kind,
                "metric": metric,
                "alpha": summary["alpha"],
                "ci_low": lo,
                "ci_high": hi,
                "n_units": summary["n_units"],
                "n_judgements": summary["n_judgements"],
                "n_annotators": summary["n_annotators"],
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ tables


@dataclass
class Leaderboards:
    """Every leaderboard table for one slice of the store, plus how it was computed."""

    filters: Filters
    settings: dict[str, Any]
    counts: dict[str, int]
    pairwise: pd.DataFrame
    win_rate: pd.DataFrame
    battles: pd.DataFrame
    # None for battles read from a votes file: it has no ratings, answers or positions.
    scores: pd.DataFrame | None = None
    scores_by: dict[str, pd.DataFrame] = field(default_factory=dict)
    position_bias: pd.DataFrame | None = None
    annotators: pd.DataFrame | None = None
    agreement: pd.DataFrame | None = None
    metrics: pd.DataFrame | None = None
    style: StyleControl | None = None
    models: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table as a flat frame, in display order (matrices get their row model as a column)."""
        tables = {
            "scores": self.scores,
            **{f"scores_by_{k}": v for k, v in self.scores_by.items()},
            "pairwise": self.pairwise,
            **self.style_tables(),
            "win_rate": self.win_rate.reset_index(),
            "battles": self.battles.reset_index(),
            "position_bias": self.position_bias,
            "annotators": self.annotators,
            "agreement": self.agreement,
            "metrics": self.metrics,
        }
        return {k: v for k, v in tables.items() if v is not None}

    def style_tables(self) -> dict[str, pd.DataFrame]:
        """Raw and style-controlled ratings side by side, and the style coefficients (when computed)."""
        if self.style is None:
            return {}
        return {
            "style_control": style_side_by_side(self.pairwise, self.style.ratings),
            "style_coefficients": self.style.coefficients,
        }


def style_side_by_side(raw: pd.DataFrame, controlled: pd.DataFrame) -> pd.DataFrame:
    """Per model: raw BT rating and CI, style-controlled rating and CI, and the rank each gives."""
    left = raw[["model", "rating", "ci_low", "ci_high", "rank"]]
    right = controlled[["model", "rating", "ci_low", "ci_high", "rank"]].rename(
        columns=lambda c: c if c == "model" else f"style_{c}"
    )
    out = left.merge(right, on="model", how="outer")
    out["change"] = out["style_rating"] - out["rating"]
    return out.sort_values(["style_rating", "model"], ascending=[False, True], na_position="last").reset_index(
        drop=True
    )


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


def _pairwise_settings(boot: dict[str, Any], both_bad: str, anchor: str | None, style: StyleControl | None) -> dict:
    settings = {
        **boot,
        "both_bad": both_bad,
        "anchor": anchor,
        "scale": "400-point; anchor model or mean = 1000",
        "online_elo": "order-dependent (votes in the order cast), for comparison only",
    }
    if style is not None:
        settings["style_control"] = {
            "battles": style.n_battles,
            "without_style_counts": style.dropped,
            "constant_features": style.constant,
        }
    return settings


def votes_leaderboards(
    votes: pd.DataFrame,
    *,
    source: str,
    style: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    both_bad: stats.BothBad = "tie",
    anchor: str | None = None,
    ci: float = 0.95,
) -> Leaderboards:
    """The pairwise tables (BT, style control when asked, win rates, battle counts) of battles read from a
    votes file (arena.leaderboards.votes_file) instead of the store."""
    from arena.leaderboards.votes_file import style_features

    boot = {"n_boot": n_boot, "seed": seed, "ci": ci}
    pairwise = stats.pairwise_leaderboard(votes, both_bad=both_bad, anchor_model=anchor, **boot)
    fitted = (
        style_control(votes, features=style_features(votes), both_bad=both_bad, anchor_model=anchor, **boot)
        if style
        else None
    )
    order = list(pairwise["model"])
    settings = _pairwise_settings(boot, both_bad, anchor, fitted)
    if fitted is not None and "length" in style_features(votes):
        settings["style_control"]["length"] = "as given in the file (tokens_* or length_*)"
    return Leaderboards(
        filters=Filters(None, None, None),
        settings={"source": source, **settings},
        counts={"votes": len(votes), "models": len(order)},
        pairwise=pairwise,
        win_rate=stats.win_rate_matrix(votes, both_bad=both_bad, order=order),
        battles=stats.battle_count_matrix(votes, both_bad=both_bad, order=order),
        style=fitted,
        models=sorted(order),
    )


def build_leaderboards(
    store: Store,
    dialogs: Iterable[Dialog],
    *,
    round: str | None = None,
    eval_set: str | None = None,
    category: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    both_bad: stats.BothBad = "tie",
    anchor: str | None = None,
    ci: float = 0.95,
    splitter: Splitter = split_words,
) -> Leaderboards:
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
    style = style_control(votes, both_bad=both_bad, anchor_model=anchor, **boot)
    order = list(pairwise["model"])
    models = sorted(set(ratings["model"]) | set(votes["model_a"]) | set(votes["model_b"]) | set(gens["model"]))
    settings = _pairwise_settings(boot, both_bad, anchor, style)
    settings["style_control"]["length"] = "characters without whitespace"  # arena.core.style
    return Leaderboards(
        filters=filters,
        settings=settings,
        counts={
            "ratings": len(ratings),
            "votes": len(votes),
            "generations": len(gens),
            "failed_generations": _failed_count(gen_raw, index, filters),
            "models": len(models),
        },
        scores=stats.score_leaderboard(ratings, by=("model",), **boot),
        scores_by=scores_by,
        pairwise=pairwise,
        win_rate=stats.win_rate_matrix(votes, both_bad=both_bad, order=order),
        battles=stats.battle_count_matrix(votes, both_bad=both_bad, order=order),
        position_bias=_position_bias(votes, ci),
        annotators=agreement.annotator_summary(votes, ratings),
        agreement=agreement_table(ratings, votes, n_boot=n_boot, seed=seed, ci=ci),
        metrics=stats.metric_summary(gens, by=("model",), **boot),
        style=style,
        models=models,
    )
