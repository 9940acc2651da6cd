"""Plotly figures for the leaderboards; they draw frames made by arena/stats.py and compute nothing themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Online Elo is shown beside BT only for comparison; its label says why it should not be trusted alone.
ONLINE_ELO_LABEL = "Online Elo (order-dependent)"


def rating_ci_figure(table: pd.DataFrame, *, value: str = "rating", label: str = "model",
                     title: str = "Bradley-Terry rating (95% CI)", show_online_elo: bool = True) -> go.Figure:
    """Points with asymmetric CI error bars, best first; works for pairwise and score leaderboards."""
    t = table.sort_values(value, ascending=False)
    fig = go.Figure(go.Scatter(
        x=t[label].astype(str), y=t[value], mode="markers", name=value,
        error_y=dict(type="data", symmetric=False, array=(t["ci_high"] - t[value]).to_numpy(),
                     arrayminus=(t[value] - t["ci_low"]).to_numpy()),
        hovertemplate="%{x}: %{y:.1f}<extra></extra>"))
    if show_online_elo and "online_elo" in t.columns:
        fig.add_trace(go.Scatter(x=t[label].astype(str), y=t["online_elo"], mode="markers", name=ONLINE_ELO_LABEL,
                                 marker=dict(symbol="x", color="gray")))
    fig.update_layout(title=title, xaxis_title=label, yaxis_title=value, showlegend="online_elo" in t.columns)
    return fig


def metric_ci_figure(summary: pd.DataFrame, metric: str, *, label: str = "model") -> go.Figure:
    """One automatic metric (from stats.metric_summary) per model with its CI."""
    rows = summary[summary["metric"] == metric]
    return rating_ci_figure(rows, value="value", label=label, title=f"{metric} (95% CI)", show_online_elo=False)


def heatmap_figure(matrix: pd.DataFrame, *, title: str, value_format: str, colorscale: str = "RdBu",
                   zmid: float | None = None) -> go.Figure:
    """Annotated heatmap of a model x opponent matrix; empty cells stay blank."""
    z = matrix.to_numpy(dtype=float)
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: format(v, value_format), otypes=[str])(np.nan_to_num(z)))
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in matrix.columns], y=[str(i) for i in matrix.index],
                               text=text, texttemplate="%{text}", colorscale=colorscale, zmid=zmid,
                               hovertemplate="%{y} vs %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="opponent", yaxis_title="model", yaxis_autorange="reversed")
    return fig


def win_rate_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Heatmap of stats.win_rate_matrix: share of battles the row model won (ties half)."""
    return heatmap_figure(matrix, title="Win rate of row model against column model", value_format=".2f",
                          zmid=0.5)


def battle_count_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Heatmap of stats.battle_count_matrix."""
    return heatmap_figure(matrix.astype(float), title="Battles per model pair", value_format=".0f",
                          colorscale="Blues")
