"""Leaderboard tab: every leaderboard table and chart for a chosen slice of the store, and retrieval recall.

Numbers come from arena/leaderboards/assembly.py (the same function `arena leaderboard` prints), figures from
arena/leaderboards/plots.py and arena/retrieval/plots.py; this module only lays them out and wires the events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from arena.core.i18n import column_label, t
from arena.leaderboards import plots
from arena.leaderboards.assembly import Leaderboards, build_leaderboards
from arena.leaderboards.tables import display_table, metrics_wide, style_meaning
from arena.retrieval.runner import RecallConfig, RecallRunner
from arena.web.policies import is_researcher
from arena.web.services import Services

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from arena.retrieval.recall import SystemResult

DEFAULT_METRIC = "similarity"
# Tables shown as Dataframes, by the name Leaderboards.tables() gives them.
TABLES = (
    "pairwise",
    "style_control",
    "scores",
    "scores_by_eval_set",
    "scores_by_category",
    "scores_by_round",
    "win_rate",
    "battles",
    "position_bias",
    "annotators",
    "agreement",
    "metrics",
)
FIGURES = ("pairwise_plot", "scores_plot", "win_rate_plot", "battles_plot")


def localized(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A display table with headers in ``lang`` (and "(all)" rows as the page says it)."""
    out = frame.rename(columns={c: column_label(lang, str(c)) for c in frame.columns})
    return out.replace({"(all)": t(lang, "lb_all")})


def leaderboard_views(boards: Leaderboards, lang: str = "ko") -> dict[str, Any]:
    """Display tables (text cells, CIs as "[lo, hi]", headers in ``lang``) and plotly figures for one set
    of leaderboards."""
    tables = boards.tables()
    views: dict[str, Any] = {
        name: localized(display_table(tables[name]), lang) for name in TABLES if name in tables and name != "metrics"
    }
    views.update(style_views(boards, lang))
    views["metrics"] = localized(metrics_wide(boards.metrics), lang)
    views["pairwise_plot"] = plots.rating_ci_figure(boards.pairwise, lang=lang)
    views["scores_plot"] = plots.rating_ci_figure(
        boards.scores, value="mean", title=t(lang, "plot_scores_title"), show_online_elo=False, lang=lang
    )
    views["win_rate_plot"] = plots.win_rate_heatmap(boards.win_rate, lang=lang)
    views["battles_plot"] = plots.battle_count_heatmap(boards.battles, lang=lang)
    return views


def style_views(boards: Leaderboards, lang: str) -> dict[str, Any]:
    """The style-controlled table, the coefficients with a sentence each on what they mean, and a status line."""
    style = boards.style
    if style is None or not style.n_battles:
        return {
            "style_control": pd.DataFrame(),
            "style_coefficients": pd.DataFrame(),
            "style_status": t(lang, "lb_style_none"),
        }
    coefs = style.coefficients
    shown = display_table(coefs)[["feature", "coef", "95% CI", "example_win_share", "example_95% CI"]]
    shown["feature"] = [t(lang, f"style_feature_{f}") for f in coefs["feature"]]
    meaning = dict(zip(coefs.dropna(subset=["example_win_share"])["feature"], style_meaning(coefs, lang)))
    shown["meaning"] = [meaning.get(f, "") for f in coefs["feature"]]
    notes = [t(lang, "lb_style_note")]
    if style.constant:
        features = ", ".join(t(lang, f"style_feature_{f}") for f in style.constant)
        notes.append(t(lang, "lb_style_constant", features=features))
    return {"style_coefficients": localized(shown, lang), "style_status": "\n\n".join(notes)}


def fitted(frame: pd.DataFrame) -> dict[str, Any]:
    """A wide table as a Dataframe update whose columns share the page's width (cells wrap at spaces)
    instead of running off its right edge; each column's share follows its longest unbreakable text."""

    def width(text: str) -> int:
        return sum(2 if ord(ch) >= 0x1100 else 1 for ch in text)  # Hangul is about twice as wide

    def longest(values: Any) -> int:
        return max((width(part) for v in values for part in str(v).split()), default=1)

    weights = [max(5, min(16, longest([c, *frame[c]]))) for c in frame.columns]
    total = sum(weights) or 1
    return gr.update(value=frame, column_widths=[f"{100 * w / total:.1f}%" for w in weights])


def metric_figure(metrics: pd.DataFrame | None, metric: str | None, lang: str = "ko") -> go.Figure:
    """One automatic metric per model with its CI ("no data" before the first computation)."""
    if metrics is None or metrics.empty or not metric:
        metrics = pd.DataFrame(columns=["model", "metric", "value", "ci_low", "ci_high"])
    return plots.metric_ci_figure(metrics, metric or DEFAULT_METRIC, lang=lang)


# ------------------------------------------------------------------------------------------------- recall


def system_label(lang: str, name: str) -> str:
    """A recall query source as the page says it (the baseline and reference query are translated)."""
    from arena.retrieval.recall import BASELINE, REFERENCE

    for machine, key in ((BASELINE, "recall_baseline"), (REFERENCE, "recall_reference")):
        if name.startswith(machine):
            return t(lang, key) + name[len(machine) :]
    return name


def recall_table(systems: list[SystemResult], *, n_boot: int, seed: int, lang: str = "en") -> pd.DataFrame:
    """One text row per query source: items, no-query rate, R@k and MRR@10 with bootstrap CIs."""
    from arena.retrieval.recall import DEFAULT_KS, MRR_DEPTH, summarize

    columns = [f"R@{k}" for k in DEFAULT_KS] + [f"MRR@{MRR_DEPTH}"]
    rows = []
    for s in (summarize(r, DEFAULT_KS, n_boot=n_boot, seed=seed) for r in systems):
        m = s["metrics"]
        cells = {
            c: f"{m[c]['value']:.3f}" + (f" [{m[c]['lo']:.3f}, {m[c]['hi']:.3f}]" if n_boot > 0 else "")
            for c in columns
        }
        rows.append(
            {"system": system_label(lang, s["system"]), "n": s["n"], "no query": f"{s['no_query_rate']:.1%}", **cells}
        )
    frame = pd.DataFrame(rows, columns=["system", "n", "no query", *columns])
    return frame.rename(columns={c: column_label(lang, c) for c in frame.columns})


# -------------------------------------------------------------------------------------------------- layout


def _choices(lang: str, values: list[str]) -> list[tuple[str, str]]:
    return [(t(lang, "lb_all"), "")] + [(v, v) for v in values]


def build(services: Services, lang: str, tab: gr.Tab | None = None, recall: RecallConfig = RecallConfig()) -> None:
    """Render the tab inside the current Blocks context; it computes when selected or on Recompute."""
    categories = sorted({d.category for d in services.dialogs if d.category})
    with gr.Row():
        round_ = gr.Dropdown(_choices(lang, []), value="", label=t(lang, "lb_round"), elem_id="lb-round")
        eval_set = gr.Dropdown(
            _choices(lang, services.eval_sets()), value="", label=t(lang, "lb_eval_set"), elem_id="lb-eval-set"
        )
        category = gr.Dropdown(
            _choices(lang, categories), value="", label=t(lang, "lb_category"), elem_id="lb-category"
        )
        refresh = gr.Button(t(lang, "lb_refresh"), variant="primary", elem_id="lb-refresh")
    with gr.Accordion(t(lang, "lb_settings"), open=False):
        with gr.Row():
            both_bad = gr.Radio(
                [(t(lang, "lb_both_bad_tie"), "tie"), (t(lang, "lb_both_bad_drop"), "drop")],
                value="tie",
                label=t(lang, "lb_both_bad"),
                elem_id="lb-both-bad",
            )
            anchor = gr.Dropdown(
                [(t(lang, "lb_anchor_mean"), "")], value="", label=t(lang, "lb_anchor"), elem_id="lb-anchor"
            )
            n_boot = gr.Number(
                1000, precision=0, minimum=0, maximum=10_000, label=t(lang, "lb_boot"), elem_id="lb-boot"
            )
            seed = gr.Number(0, precision=0, label=t(lang, "lb_seed"), elem_id="lb-seed")
    status = gr.Markdown(elem_id="lb-status")
    metrics_state = gr.State(None)
    shown: dict[str, Any] = {}

    def table(name: str, label: str | None = None) -> None:
        shown[name] = gr.Dataframe(
            pd.DataFrame(), label=label, interactive=False, wrap=True, elem_id=f"lb-{name.replace('_', '-')}"
        )

    gr.Markdown(f"### {t(lang, 'lb_pairwise')}\n{t(lang, 'lb_pairwise_note')}")
    shown["pairwise_plot"] = gr.Plot(elem_id="lb-pairwise-plot")
    table("pairwise")
    gr.Markdown(f"### {t(lang, 'lb_style')}")
    shown["style_status"] = gr.Markdown(elem_id="lb-style-status")
    table("style_control")
    table("style_coefficients", t(lang, "lb_style_coefficients"))
    gr.Markdown(f"### {t(lang, 'lb_scores')}")
    shown["scores_plot"] = gr.Plot(elem_id="lb-scores-plot")
    table("scores")
    with gr.Accordion(t(lang, "lb_scores_by"), open=False):
        for name, key in (
            ("scores_by_eval_set", "lb_eval_set"),
            ("scores_by_category", "lb_category"),
            ("scores_by_round", "lb_round"),
        ):
            table(name, t(lang, key))
    gr.Markdown(f"### {t(lang, 'lb_matrices')}")
    with gr.Row():
        shown["win_rate_plot"] = gr.Plot(elem_id="lb-win-rate-plot")
        shown["battles_plot"] = gr.Plot(elem_id="lb-battles-plot")
    with gr.Accordion(t(lang, "lb_diagnostics"), open=True):
        table("position_bias", t(lang, "lb_position_bias"))
        table("agreement", t(lang, "lb_agreement"))
        table("annotators", t(lang, "lb_annotators"))
        with gr.Accordion(t(lang, "lb_matrix_tables"), open=False):
            table("win_rate")
            table("battles")
    gr.Markdown(f"### {t(lang, 'lb_metrics')}")
    table("metrics")
    metric = gr.Dropdown(
        [(column_label(lang, DEFAULT_METRIC), DEFAULT_METRIC)],
        value=DEFAULT_METRIC,
        label=t(lang, "lb_metric_pick"),
        elem_id="lb-metric",
    )
    metric_plot = gr.Plot(elem_id="lb-metric-plot")
    _build_recall(services, lang, RecallRunner(recall), tab)

    inputs = [round_, eval_set, category, both_bad, anchor, n_boot, seed, metric]
    outputs = [*shown.values(), status, round_, anchor, metric, metric_plot, metrics_state]

    def compute(
        request: gr.Request,
        round_v: str,
        eval_set_v: str,
        category_v: str,
        both_bad_v: str,
        anchor_v: str,
        n_boot_v: float,
        seed_v: float,
        metric_v: str,
    ) -> dict[Any, Any]:
        # Researchers only: aggregate standings would bias annotators who are voting in blind rounds.
        if not is_researcher(services.store, getattr(request, "username", None)):
            return {status: t(lang, "researcher_only")}
        try:
            boards = build_leaderboards(
                services.store,
                services.dialogs,
                round=round_v or None,
                eval_set=eval_set_v or None,
                category=category_v or None,
                n_boot=max(0, int(n_boot_v or 0)),
                seed=int(seed_v or 0),
                both_bad=both_bad_v,
                anchor=anchor_v or None,
                splitter=services.splitter,
            )
        except ValueError as exc:  # e.g. an anchor model with no votes in this slice
            return {status: t(lang, "lb_error", error=exc)}
        out: dict[Any, Any] = {shown[name]: value for name, value in leaderboard_views(boards, lang).items()}
        out[shown["metrics"]] = fitted(out[shown["metrics"]])  # one column per metric: wider than the page
        if not out[shown["style_coefficients"]].empty:  # the meaning sentences wrap instead of running off
            out[shown["style_coefficients"]] = fitted(out[shown["style_coefficients"]])
        n = boards.counts
        out[status] = t(
            lang,
            "lb_summary",
            ratings=n["ratings"],
            votes=n["votes"],
            generations=n["generations"],
            failed=n["failed_generations"],
            n_boot=boards.settings["n_boot"],
            seed=boards.settings["seed"],
        )
        rounds = [r.name for r in services.store.list_rounds()]
        out[round_] = gr.update(choices=_choices(lang, rounds))
        out[anchor] = gr.update(choices=[(t(lang, "lb_anchor_mean"), "")] + [(m, m) for m in boards.pairwise["model"]])
        names = list(dict.fromkeys(boards.metrics["metric"])) or [DEFAULT_METRIC]
        chosen = metric_v if metric_v in names else names[0]
        out[metric] = gr.update(choices=[(column_label(lang, n), n) for n in names], value=chosen)
        out[metric_plot] = metric_figure(boards.metrics, chosen, lang)
        out[metrics_state] = boards.metrics
        return out

    refresh.click(compute, inputs, outputs)
    for control in (round_, eval_set, category, both_bad):
        control.input(compute, inputs, outputs)
    if tab is not None:
        tab.select(compute, inputs, outputs)
    metric.input(
        lambda frame, name: {metric_plot: metric_figure(frame, name, lang)}, [metrics_state, metric], [metric_plot]
    )


def _build_recall(services: Services, lang: str, runner: RecallRunner, tab: gr.Tab | None = None) -> None:
    """The recall section: baseline and reference query always, registry models when ticked."""
    with gr.Accordion(t(lang, "lb_recall"), open=False):
        # Choices are filled when a researcher opens the tab: initial values are public in /config,
        # and the model list is not for annotators (arena.web.policies).
        models = gr.CheckboxGroup([], value=[], label=t(lang, "lb_recall_models"), elem_id="lb-recall-models")
        run = gr.Button(t(lang, "lb_recall_run"), elem_id="lb-recall-run")
        note = gr.Markdown(elem_id="lb-recall-status")
        table = gr.Dataframe(pd.DataFrame(), interactive=False, wrap=True, elem_id="lb-recall-table")
        curve = gr.Plot(elem_id="lb-recall-plot")

    async def compute(request: gr.Request, chosen: list[str]) -> dict[Any, Any]:
        from arena.retrieval.plots import recall_curve_figure

        if not is_researcher(services.store, getattr(request, "username", None)):
            return {note: t(lang, "researcher_only")}
        c = runner.config
        missing = next((p for p in (c.items_path, c.docs_path) if not p.is_file()), None)
        if missing is not None:
            return {note: t(lang, "lb_recall_missing", path=missing)}
        systems = await runner.systems(
            services.registry, [m for m in chosen or [] if m in services.registry], services.store
        )
        items, retriever = runner.load()
        return {
            note: t(lang, "lb_recall_done", n=len(items), docs=len(retriever.corpus.ids)),
            table: fitted(recall_table(systems, n_boot=c.n_boot, seed=c.seed, lang=lang)),
            curve: recall_curve_figure(
                systems, n_boot=c.n_boot, seed=c.seed, lang=lang, label=lambda name: system_label(lang, name)
            ),
        }

    run.click(compute, [models], [note, table, curve])

    def fill_models(request: gr.Request) -> dict[Any, Any]:
        if not is_researcher(services.store, getattr(request, "username", None)):
            return {}
        return {models: gr.update(choices=services.registry.names())}

    if tab is not None:
        tab.select(fill_models, None, [models], show_progress="hidden")
