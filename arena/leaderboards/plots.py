"""Plotly figures for the leaderboards; they draw frames made by arena.stats and compute nothing themselves.

Every title, axis and legend a person reads comes from arena/core/i18n.py in the page's language
(``lang``); the frames keep their machine column names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from arena.core.figures import no_data_figure
from arena.core.i18n import column_label, t

# Online Elo is shown beside BT only for comparison; its label says why it should not be trusted alone.
ONLINE_ELO_LABEL = "Online Elo (order-dependent)"


def rating_ci_figure(
    table: pd.DataFrame,
    *,
    value: str = "rating",
    label: str = "model",
    title: str | None = None,
    show_online_elo: bool = True,
    lang: str = "en",
) -> go.Figure:
    """Points with asymmetric CI error bars, best first; works for pairwise and score leaderboards."""
    title = title if title is not None else t(lang, "plot_bt_title")
    if table.empty:
        return no_data_figure(title, lang)
    tbl = table.sort_values(value, ascending=False)
    fig = go.Figure(
        go.Scatter(
            x=tbl[label].astype(str),
            y=tbl[value],
            mode="markers",
            name=column_label(lang, value),
            error_y=dict(
                type="data",
                symmetric=False,
                array=(tbl["ci_high"] - tbl[value]).to_numpy(),
                arrayminus=(tbl[value] - tbl["ci_low"]).to_numpy(),
            ),
            hovertemplate="%{x}: %{y:.1f}<extra></extra>",
        )
    )
    if show_online_elo and "online_elo" in tbl.columns:
        fig.add_trace(
            go.Scatter(
                x=tbl[label].astype(str),
                y=tbl["online_elo"],
                mode="markers",
                name=t(lang, "plot_online_elo"),
                marker=dict(symbol="x", color="gray"),
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title=column_label(lang, label),
        yaxis_title=column_label(lang, value),
        showlegend="online_elo" in tbl.columns,
    )
    return fig


def metric_ci_figure(summary: pd.DataFrame, metric: str, *, label: str = "model", lang: str = "en") -> go.Figure:
    """One automatic metric (from stats.metric_summary) per model with its CI."""
    rows = summary[summary["metric"] == metric]
    fig = rating_ci_figure(
        rows,
        value="value",
        label=label,
        show_online_elo=False,
        lang=lang,
        title=t(lang, "plot_ci_title", what=column_label(lang, metric)),
    )
    if not rows.empty:
        fig.update_layout(yaxis_title=column_label(lang, metric))
    return fig


def heatmap_figure(
    matrix: pd.DataFrame,
    *,
    title: str,
    value_format: str,
    colorscale: str = "RdBu",
    zmid: float | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    lang: str = "en",
) -> go.Figure:
    """Annotated heatmap of a model x opponent matrix; empty cells stay blank."""
    z = matrix.to_numpy(dtype=float)
    if z.size == 0 or np.isnan(z).all():
        return no_data_figure(title, lang)
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: format(v, value_format), otypes=[str])(np.nan_to_num(z)))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            text=text,
            texttemplate="%{text}",
            colorscale=colorscale,
            zmid=zmid,
            zmin=zmin,
            zmax=zmax,
            hovertemplate="%{y} vs %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=t(lang, "plot_opponent"),
        yaxis_title=column_label(lang, "model"),
        yaxis_autorange="reversed",
    )
    return fig


def win_rate_heatmap(matrix: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Heatmap of stats.win_rate_matrix: share of battles the row model won (ties half).

    The colour range is fixed at 0-1 around 0.5: auto-scaling would stretch a 0.46-0.54 near tie
    into deep red against deep blue.
    """
    return heatmap_figure(
        matrix, title=t(lang, "plot_win_rate_title"), value_format=".2f", zmin=0.0, zmax=1.0, lang=lang
    )


def battle_count_heatmap(matrix: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Heatmap of stats.battle_count_matrix."""
    return heatmap_figure(
        matrix.astype(float), title=t(lang, "plot_battles_title"), value_format=".0f", colorscale="Blues", lang=lang
    )
