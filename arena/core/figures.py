"""The figure every plot shows when there is nothing to draw (leaderboards and recall alike), in the page's language."""

from __future__ import annotations

import plotly.graph_objects as go

from arena.core.i18n import t


def no_data_figure(title: str, lang: str = "en") -> go.Figure:
    """A figure that says there is nothing to draw, instead of empty axes."""
    fig = go.Figure()
    fig.add_annotation(
        text=t(lang, "plot_no_data"),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font=dict(size=16, color="#666"),
    )
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, meta={"no_data": True})
    return fig
