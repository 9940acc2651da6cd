"""Leaderboard frames as tables a person reads: numbers, CI text, the wide metric table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    pass


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
    """Every cell as text; a ci_low/ci_high pair becomes one "[lo, hi]" column right after its value (and a
    prefixed pair such as style_ci_low/style_ci_high one "style 95% CI" column after style_rating)."""
    pairs = [p for p in ("", "style_", "example_") if {f"{p}ci_low", f"{p}ci_high"} <= set(frame.columns)]
    bounds = {f"{p}ci_{side}" for p in pairs for side in ("low", "high")}
    columns = [c for c in frame.columns if c not in bounds]
    out = pd.DataFrame({c: [fmt_number(v) for v in frame[c]] for c in columns}, columns=columns)
    for prefix in pairs:
        names = [f"{prefix}{c}" for c in ("rating", "mean", "value", "alpha", "left_share", "coef", "win_share")]
        value = next((c for c in names if c in out.columns), out.columns[-1])
        cis = [_ci_text(lo, hi) for lo, hi in zip(frame[f"{prefix}ci_low"], frame[f"{prefix}ci_high"])]
        out.insert(list(out.columns).index(value) + 1, f"{prefix}{ci_label}", cis)
    return out


def metrics_wide(metrics: pd.DataFrame) -> pd.DataFrame:
    """metric_summary's long rows as one text row per model: "value [lo, hi]" per metric, plus the answer count."""
    if metrics.empty:
        return pd.DataFrame(columns=["model", "answers"])
    text = [
        fmt_number(v) + ("" if fmt_number(lo) == "–" else f" {_ci_text(lo, hi)}")
        for v, lo, hi in zip(metrics["value"], metrics["ci_low"], metrics["ci_high"])
    ]
    order = list(dict.fromkeys(metrics["metric"]))
    wide = metrics.assign(text=text).pivot(index="model", columns="metric", values="text")[order]
    answers = metrics.groupby("model")["n"].max().rename("answers").astype(str)
    return wide.join(answers).reset_index()[["model", "answers", *order]]


def style_meaning(coefficients: pd.DataFrame, lang: str = "en", unit: str = "chars") -> list[str]:
    """One sentence per style feature: how often the answer with more of it wins between equal models.

    ``unit`` names what length counts: "chars" (the store's counts) or "tokens" (a votes file's tokens_*).
    """
    from arena.core.i18n import t

    def pct(x: float) -> str:
        return f"{100 * x:.0f}%"

    out = []
    for row in coefficients.itertuples(index=False):
        if row.feature not in ("length", "headers", "lists", "bold") or math.isnan(row.example_win_share):
            continue
        what = t(
            lang,
            f"style_what_{row.feature}",
            a=int(row.example_a),
            b=int(row.example_b),
            unit=t(lang, f"style_unit_{unit}"),
        )
        ci = "" if math.isnan(row.example_ci_low) else f"[{pct(row.example_ci_low)}, {pct(row.example_ci_high)}]"
        out.append(t(lang, "style_meaning", what=what, share=pct(row.example_win_share), ci=ci).replace("  ", " "))
    return out
