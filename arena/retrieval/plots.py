"""Plotly figures for retrieval recall (kept apart from the metric code, which never imports plotly)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from arena.core.i18n import t
from arena.retrieval.recall import SystemResult, bootstrap_ci

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Qualitative palette; the baseline comes first and keeps the grey.
_COLORS = ["#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def recall_curve_figure(
    results: Sequence[SystemResult],
    max_k: int | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lang: str = "en",
    label: Callable[[str], str] | None = None,
) -> go.Figure:
    """hit@k for k = 1..max_k, one line per system, with a shaded bootstrap CI band; texts in ``lang``,
    system names through ``label``."""
    import plotly.graph_objects as go

    from arena.core.figures import no_data_figure

    if not results or all(len(r.hits([1])) == 0 for r in results):
        return no_data_figure(t(lang, "plot_recall_title"), lang)
    label = label or (lambda name: name)
    fig = go.Figure()
    for i, result in enumerate(results):
        ks = list(range(1, (max_k or result.depth) + 1))
        values = result.hits(ks)
        mean = values.mean(axis=0) if len(values) else [float("nan")] * len(ks)
        lo, hi = bootstrap_ci(values, n_boot, seed, level)
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(
            go.Scatter(
                x=ks + ks[::-1],
                y=list(hi) + list(lo)[::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                name=f"{label(result.name)} CI",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=list(mean),
                mode="lines+markers",
                line={"color": color},
                name=t(lang, "plot_recall_legend", name=label(result.name), rate=f"{result.no_query_rate():.0%}"),
                hovertemplate="R@%{x}: %{y:.3f}<extra>" + label(result.name) + "</extra>",
            )
        )
    fig.update_layout(
        title=t(lang, "plot_recall_title"),
        xaxis_title="k",
        yaxis_title=t(lang, "plot_recall_y"),
        yaxis_range=[0, 1.02],
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(dtick=1)
    return fig
