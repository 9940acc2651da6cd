"""What the Leaderboard tab shows is in the page's language: table headers, plot titles, axes and legends
(Korean at /, English at /en/; CSV and JSON keep the machine names), empty plots say "no data", and the
win-rate heatmap's colour range is fixed at 0-1."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from arena.core.i18n import COLUMNS
from arena.leaderboards import plots
from arena.leaderboards.assembly import build_leaderboards
from arena.retrieval.runner import RecallConfig, RecallRunner
from arena.store import Store
from arena.web.ui.leaderboard_tab import leaderboard_views, metric_figure, recall_table
from tests.test_leaderboard import N_BOOT, dialogs, populate  # noqa: F401 - dialogs is a fixture

HANGUL = re.compile(r"[\uac00-\ud7a3]")
MACHINE = {name for name in COLUMNS if "_" in name}  # n_battles, win_rate, left_share, ...
MODELS = {"ko-strong", "ko-mid", "ko-weak"}


@pytest.fixture(scope="module")
def boards(tmp_path_factory, dialogs):  # noqa: F811
    db = str(tmp_path_factory.mktemp("lb-i18n") / "ratings.db")
    with Store.open(db) as store:
        populate(store, dialogs, r2=False)
        yield build_leaderboards(store, dialogs, n_boot=N_BOOT)


def _texts(fig: go.Figure) -> list[str]:
    """Every text of a figure a person reads: title, axis titles, trace (legend) names."""
    layout = fig.layout
    out = [layout.title.text, layout.xaxis.title.text, layout.yaxis.title.text]
    out += [tr.name for tr in fig.data if tr.name and tr.showlegend is not False]
    return [x for x in out if x]


def _no_data(fig: go.Figure) -> str | None:
    notes = [a.text for a in fig.layout.annotations]
    return notes[0] if notes and not fig.data else None


def test_korean_tables_carry_korean_headers(boards):
    views = leaderboard_views(boards, "ko")
    assert list(views["pairwise"].columns) == [
        "모델",
        "BT 점수",
        "95% 신뢰구간",
        "순위",
        "대결 수",
        "승",
        "무승부",
        "패",
        "승률",
        "온라인 Elo",
    ]
    for name, frame in views.items():
        if isinstance(frame, pd.DataFrame):
            headers = [str(c) for c in frame.columns if str(c) not in MODELS and not str(c).startswith("R@")]
            assert headers and all(HANGUL.search(h) or h == "α" for h in headers), (name, headers)
            assert not MACHINE & set(headers), (name, headers)
    assert "(전체)" in set(views["position_bias"]["라운드"])
    assert "정답 유사도" in views["metrics"].columns and "초당 토큰" in views["metrics"].columns


def test_english_tables_carry_english_headers(boards):
    views = leaderboard_views(boards, "en")
    assert list(views["pairwise"].columns) == [
        "model",
        "rating",
        "95% CI",
        "rank",
        "battles",
        "wins",
        "ties",
        "losses",
        "win rate",
        "online Elo",
    ]
    for name, frame in views.items():
        if isinstance(frame, pd.DataFrame):
            headers = {str(c) for c in frame.columns}
            assert not MACHINE & headers and not any(HANGUL.search(h) for h in headers), (name, headers)
    assert "left share" in views["position_bias"].columns


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_plots_carry_titles_axes_and_legends_in_the_page_language(boards, lang):
    views = leaderboard_views(boards, lang)
    figures = [views[k] for k in ("pairwise_plot", "scores_plot", "win_rate_plot", "battles_plot")]
    figures.append(metric_figure(boards.metrics, "similarity", lang))
    for fig in figures:
        texts = _texts(fig)
        assert len(texts) >= 3, texts  # a title and both axes
        for text in texts:
            assert bool(HANGUL.search(text)) == (lang == "ko"), text
            assert not MACHINE & set(re.findall(r"\w+", text)), text
    assert any("온라인 Elo" in n for n in _texts(views["pairwise_plot"])) == (lang == "ko")


def test_empty_plots_say_no_data(tmp_path: Path, dialogs):  # noqa: F811
    with Store.open(str(tmp_path / "empty.db")) as store:
        empty = build_leaderboards(store, dialogs, n_boot=N_BOOT)
    for lang, words in (("ko", "데이터 없음"), ("en", "no data")):
        views = leaderboard_views(empty, lang)
        for fig in (
            views["pairwise_plot"],
            views["scores_plot"],
            views["win_rate_plot"],
            views["battles_plot"],
            metric_figure(None, None, lang),
        ):
            assert _no_data(fig) == words, fig.layout
            assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_win_rate_colour_range_is_fixed_at_0_to_1(boards):
    near_tie = pd.DataFrame([[np.nan, 0.54], [0.46, np.nan]], index=["a", "b"], columns=["a", "b"])
    for matrix in (near_tie, boards.win_rate):
        heat = plots.win_rate_heatmap(matrix, lang="ko").data[0]
        assert (heat.zmin, heat.zmax) == (0.0, 1.0) and heat.zauto is not True
    assert (
        leaderboard_views(boards, "ko")["win_rate_plot"].data[0].zmin,
        leaderboard_views(boards, "ko")["win_rate_plot"].data[0].zmax,
    ) == (0.0, 1.0)


def test_recall_table_and_curve_in_the_page_language(tmp_path: Path):
    from arena.retrieval.plots import recall_curve_figure
    from backends.registry import Registry

    runner = RecallRunner(RecallConfig(tokenizer="whitespace", index_cache=tmp_path / "bm25", n_boot=20))
    with Store.open(str(tmp_path / "recall.db")) as store:
        systems = asyncio.run(runner.systems(Registry([], {}), [], store))
    ko = recall_table(systems, n_boot=20, seed=0, lang="ko")
    assert list(ko.columns)[:3] == ["검색어 출처", "건수", "검색어 없음"]
    assert list(ko["검색어 출처"]) == ["마지막 발화 + BM25", "정답 검색어 + BM25"]
    en = recall_table(systems, n_boot=20, seed=0, lang="en")
    assert list(en["system"]) == ["last utterance + BM25", "reference query + BM25"]
    from arena.web.ui.leaderboard_tab import system_label

    curve = recall_curve_figure(systems, n_boot=20, lang="ko", label=lambda n: system_label("ko", n))
    assert HANGUL.search(curve.layout.title.text) and HANGUL.search(curve.layout.yaxis.title.text)
    assert all(HANGUL.search(n) for n in _texts(curve)[3:]), _texts(curve)
    assert _no_data(recall_curve_figure([], lang="ko")) == "데이터 없음"


def test_wide_tables_share_the_page_width_instead_of_running_off_it(boards):
    from arena.web.ui.leaderboard_tab import fitted

    frame = leaderboard_views(boards, "ko")["metrics"]
    assert len(frame.columns) >= 12  # one column per metric: wider than any page at natural width
    update = fitted(frame)
    widths = [float(w.rstrip("%")) for w in update["column_widths"]]
    assert len(widths) == len(frame.columns) and abs(sum(widths) - 100) < 0.5
    assert widths[0] > widths[1]  # the model name gets more room than the answer count
    assert update["value"] is frame


def test_adapters_tab_says_status_and_load_failures_in_korean(tmp_path: Path):
    from arena.adapters.hotload import AdapterError
    from arena.web.services import Services
    from arena.web.ui.adapters_tab import adapter_table, load_error
    from backends.registry import Registry
    from training.adapters import AdapterInfo

    infos = [AdapterInfo("done", tmp_path / "done", True), AdapterInfo("half", tmp_path / "half", False)]
    with Store.open(str(tmp_path / "a.db")) as store:
        services = Services(store=store, registry=Registry([], {}), dialogs=[])
        ko, en = adapter_table(infos, services, "ko"), adapter_table(infos, services, "en")
    assert list(ko["상태"]) == ["사용 가능", "학습 미완료 (--resume으로 이어서 학습)"]
    assert list(en["status"]) == ["ready", "unfinished (resume with --resume)"]
    raw = AdapterError(
        "loading /x/done over llama-tiny failed: NoMatchingPeftModuleError: Target modules "
        "{'q_proj'} not found in the base model"
    )
    text = load_error("ko", "done", "llama-tiny", raw)
    lead, _, details = text.partition("<details>")
    assert "맞지 않습니다" in lead and "NoMatchingPeftModuleError" not in lead
    assert "기술 정보" in details and "NoMatchingPeftModuleError" in details  # still there, folded away
    assert "does not fit" in load_error("en", "done", "llama-tiny", raw).partition("<details>")[0]
