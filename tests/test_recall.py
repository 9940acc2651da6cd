"""Retrieval recall: BM25 parity with rank_bm25, tie-breaks, index cache, Kiwi, metrics, queries and the CLI."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest

from arena.core.dialogs import Dialog, load_dialogs
from arena.retrieval.bm25 import BM25Index, top_k
from arena.retrieval.recall import (
    GenerationReport,
    ItemOutcome,
    MemoryQueryCache,
    QueryResult,
    SystemResult,
    baseline_query,
    extract_query,
    generate_queries,
    gold_ranks,
    retrieval_items,
    score_system,
    summarize,
)
from arena.retrieval.retriever import KiwiTokenizer, WhitespaceTokenizer, open_retriever, tokenize_unique
from arena.seeds.retrieval import (
    CATEGORIES,
    COLORS,
    DETAILS,
    FITS,
    MATERIALS,
    SEASONS,
    STYLES,
    TOOL_NAME,
    write_fashion_retrieval,
)
from backends.base import ToolCall

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SET = ROOT / "eval_sets" / "fashion_retrieval.jsonl"
SHIPPED_INDEX = ROOT / "eval_sets" / "retrieval" / "fashion_docs.jsonl"
PARTICLES = ["", "", "은", "는", "의", "를", "과"]


@pytest.fixture(scope="module")
def kiwi() -> KiwiTokenizer:
    return KiwiTokenizer()


def _korean_corpus(n: int, seed: int) -> list[str]:
    """Synthetic Korean titles; "패션" sits in ~60% of them so its idf is negative and gets floored."""
    rng = random.Random(seed)
    words = COLORS + FITS + MATERIALS + DETAILS + STYLES + CATEGORIES + SEASONS
    titles = []
    for _ in range(n):
        parts = [rng.choice(words) + rng.choice(PARTICLES) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.6:
            parts.append("패션")
        titles.append(" ".join(parts))
    return titles


def _reference_top(scores: np.ndarray, k: int) -> list[int]:
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order if scores[i] > 0][:k]


def test_parity_with_rank_bm25(kiwi: KiwiTokenizer) -> None:
    from rank_bm25 import BM25Okapi

    corpus = list(kiwi.batch(_korean_corpus(3000, seed=1)))
    reference = BM25Okapi(corpus)
    ours = BM25Index.build(corpus)
    assert ours.stats["average_idf"] == pytest.approx(reference.average_idf, abs=1e-9)
    assert reference.idf["패션"] == pytest.approx(0.25 * reference.average_idf)  # the negative-idf floor is exercised

    rng = random.Random(2)
    vocab = sorted(ours.vocab)
    queries = [[rng.choice(vocab + ["없는말"]) for _ in range(rng.randint(1, 5))] for _ in range(2000)]
    hits = ours.search_many(queries, k=10)
    worst = 0.0
    for query, got in zip(queries, hits):
        expected_scores = reference.get_scores(query)
        expected = _reference_top(expected_scores, 10)
        assert got.indices.tolist() == expected, query
        if expected:
            worst = max(worst, float(np.abs(got.scores - expected_scores[expected]).max()))
    assert worst <= 1e-5
    for query in queries[:50]:  # full score vectors agree too, not just the top
        np.testing.assert_allclose(ours.get_scores(query), reference.get_scores(query), rtol=0, atol=1e-5)


def test_tie_break_is_lower_doc_index_first() -> None:
    index = BM25Index.build([["코트"], ["롱", "코트"], ["코트"], ["짚업"], ["코트"]])
    assert index.search(["코트"], k=10).indices.tolist() == [0, 2, 4, 1]
    assert index.search(["코트"], k=2).indices.tolist() == [0, 2]
    # Equal scores straddling the k boundary: the lower indices win, in every batching.
    single = [index.search(["코트"], k=k).indices.tolist() for k in (1, 2, 3)]
    batched = [h.indices.tolist() for h in index.search_many([["코트"]] * 3, k=2)]
    assert single == [[0], [0, 2], [0, 2, 4]] and batched == [[0, 2]] * 3
    hits = top_k(np.array([7, 3, 5, 1]), np.array([1.0, 2.0, 1.0, 1.0]), 3)
    assert hits.indices.tolist() == [3, 1, 5]


def _zipf_corpus(n_docs: int, vocab: int, seed: int) -> list[list[str]]:
    """Whitespace-token titles with Zipf word frequencies: rare and very frequent terms side by side."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, vocab + 1) ** -1.1
    p /= p.sum()
    return [[f"w{i}" for i in rng.choice(vocab, size=rng.integers(1, 6), p=p)] for _ in range(n_docs)]


@pytest.mark.parametrize("k", [1, 10, 70])
def test_fast_search_matches_rank_bm25_on_zipf_titles(k: int) -> None:
    # Frequent terms take the head path, rare + frequent queries the MaxScore cut, k=70 > HEAD the full one.
    from rank_bm25 import BM25Okapi

    corpus = _zipf_corpus(4000, 3000, seed=3)
    reference = BM25Okapi(corpus)
    ours = BM25Index.build(corpus)
    assert len(ours.heads.docs) > 20  # many terms are frequent enough to have a head
    rng = np.random.default_rng(4)
    queries = [
        [corpus[rng.integers(len(corpus))][0]] + [f"w{i}" for i in rng.zipf(1.3, size=rng.integers(0, 3)) if i < 3000]
        for _ in range(600)
    ]
    for query, got in zip(queries, ours.search_many(queries, k)):
        expected_scores = reference.get_scores(query)
        expected = _reference_top(expected_scores, k)
        assert got.indices.tolist() == expected, query
        np.testing.assert_allclose(got.scores, expected_scores[expected], rtol=0, atol=1e-9)


def test_head_that_runs_out_and_non_positive_weights_stay_exact() -> None:
    from rank_bm25 import BM25Okapi

    # "a" is in 100 documents; the first 80 also hold "b", so a's head (64 best) has no "a"-only document left.
    corpus = [["a", "b"] for _ in range(80)] + [["a", "c", "d"] for _ in range(20)] + [["e"] for _ in range(300)]
    reference, ours = BM25Okapi(corpus), BM25Index.build(corpus)
    for query in (["b", "a"], ["a"], ["a", "e"], ["c", "a", "b"]):
        expected = _reference_top(reference.get_scores(query), 10)
        assert ours.search(query, 10).indices.tolist() == expected, query
    # Every term in most documents: negative idf floored to a negative epsilon -> the sparse-product fallback.
    corpus = [["x", "y", "z"] for _ in range(10)] + [["x", "y", "z", "r1"], ["x", "y", "z", "r2"]]
    reference, ours = BM25Okapi(corpus), BM25Index.build(corpus)
    assert not ours._positive and reference.average_idf < 0
    for query in (["r1"], ["x", "r2"], ["x", "y"]):
        expected_scores = reference.get_scores(query)
        got = ours.search(query, 10)
        assert got.indices.tolist() == _reference_top(expected_scores, 10), query


def _write_docs(path: Path, titles: list[str]) -> None:
    rows = [{"id": f"d{i}", "title": t, "text": ""} for i, t in enumerate(titles)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_index_cache_is_reused_and_invalidated(tmp_path: Path, kiwi: KiwiTokenizer) -> None:
    docs, cache = tmp_path / "docs.index.jsonl", tmp_path / "cache"
    _write_docs(docs, ["크록스", "크룩스", "브라운 롱 코트", "아크네 스튜디오"])
    first = open_retriever(docs, kiwi, cache_dir=cache)
    assert first.built
    manifest = next(cache.glob("*/manifest.json"))
    stamp = manifest.stat().st_mtime_ns
    assert json.loads(manifest.read_text())["tokenizer"]["name"] == "kiwi"

    second = open_retriever(docs, kiwi, cache_dir=cache)
    assert not second.built and manifest.stat().st_mtime_ns == stamp
    assert not second.index.matrix.data.flags.writeable  # memory-mapped, read-only
    assert second.search("코트는 뭐야?", 3) == first.search("코트는 뭐야?", 3)
    assert second.search("코트는 뭐야?", 3)[0][0] == "d2"

    _write_docs(docs, ["크록스", "크룩스", "브라운 롱 코트", "아크네 스튜디오", "코트"])
    third = open_retriever(docs, kiwi, cache_dir=cache)
    assert third.built and third.search("코트", 1)[0][0] == "d4"
    assert not open_retriever(docs, kiwi, cache_dir=cache).built
    # Another tokenizer is another index, and does not clobber this one.
    assert open_retriever(docs, WhitespaceTokenizer(), cache_dir=cache).built
    assert not open_retriever(docs, kiwi, cache_dir=cache).built


def test_kiwi_splits_particles(kiwi: KiwiTokenizer) -> None:
    assert "코트" in kiwi("코트는")
    assert kiwi("코트는") == kiwi("코트가") == kiwi("코트")
    assert {"크록스", "나라", "브랜드"} <= set(kiwi("크록스는 어느 나라 브랜드야?"))
    texts = ["오버사이즈하면 아크네 스튜디오잖아", "", "신발이 구멍이 나 있던데"]
    assert list(kiwi.batch(texts)) == [kiwi(t) for t in texts]
    assert "아크네" in kiwi(texts[0])  # multi-word proper nouns split into words
    assert WhitespaceTokenizer()("코트는 Acne") == ["코트는", "acne"]


def test_recall_and_mrr_by_hand() -> None:
    outcomes = [
        ItemOutcome("a", "q", "ok", [1]),
        ItemOutcome("b", "q", "ok", [3]),
        ItemOutcome("c", "q", "ok", [None]),
        ItemOutcome("d", None, "no_call", [None]),
        ItemOutcome("e", "q", "ok", [2, None]),  # two golds, one found at rank 2
    ]
    result = SystemResult("x", outcomes, depth=10)
    ks = [1, 2, 4, 10]
    assert result.hits(ks).mean(axis=0).tolist() == pytest.approx([1 / 5, 2 / 5, 3 / 5, 3 / 5])
    assert result.recalls(ks).mean(axis=0).tolist() == pytest.approx([1 / 5, 1.5 / 5, 2.5 / 5, 2.5 / 5])
    assert result.reciprocal_ranks().mean() == pytest.approx((1 + 1 / 3 + 1 / 2) / 5)
    summary = summarize(result, ks, n_boot=200, seed=0)
    assert summary["metrics"]["R@4"]["value"] == pytest.approx(0.6)
    assert summary["metrics"]["R@4"]["lo"] <= 0.6 <= summary["metrics"]["R@4"]["hi"]
    assert summary["no_query_rate"] == pytest.approx(0.2)
    assert summarize(result, ks, n_boot=200, seed=0) == summary  # seeded: reproducible

    ids, titles = ["d0", "d1", "d2"], ["크룩스", "코트", "크룩스"]
    assert gold_ranks(["크룩스", "d1", "없음"], [1, 2, 0], ids, titles) == [2, 1, None]


def test_extract_query_statuses() -> None:
    tools = {TOOL_NAME}

    def call(name: str, args: str | dict) -> ToolCall:
        return ToolCall.from_openai({"function": {"name": name, "arguments": args}})

    assert extract_query([], tools).status == "no_call"
    assert extract_query([call("google_image_search", "{}")], tools).status == "wrong_tool"
    assert extract_query([call(TOOL_NAME, '{"text_query": ')], tools).status == "malformed"
    assert extract_query([call(TOOL_NAME, '{"text_query": ""}')], tools).status == "malformed"
    assert extract_query([call(TOOL_NAME, '{"query": "코트"}')], tools).status == "malformed"
    got = extract_query(
        [call("other", "{}"), call(TOOL_NAME, {"text_query": " 코트 "}), call(TOOL_NAME, '{"text_query": "x"}')], tools
    )
    assert got == QueryResult("코트")
    stored = [{"type": "function", "function": {"name": TOOL_NAME, "arguments": '{"text_query": "크룩스 용도"}'}}]
    assert extract_query(ToolCall.list_from_openai(stored), tools).query == "크룩스 용도"


def test_model_queries_no_query_rate_cache_and_resume(tmp_path: Path, kiwi: KiwiTokenizer) -> None:
    items = retrieval_items(load_dialogs([SHIPPED_SET]))[:6]
    calls: list[str] = []
    running = {"now": 0, "max": 0}
    down = {"server": True}

    async def generate(dialog: Dialog) -> list[ToolCall]:
        calls.append(dialog.id)
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        n = items.index(dialog)
        if n == 0:
            return []  # no call
        if n == 1:
            return [ToolCall(name=TOOL_NAME, arguments="{broken")]
        if n == 2 and down["server"]:
            raise ConnectionError("server down")
        return [ToolCall(name=TOOL_NAME, arguments=json.dumps({"text_query": dialog.meta["reference_query"]}))]

    cache = MemoryQueryCache()
    report = GenerationReport()
    queries = asyncio.run(generate_queries(items, generate, concurrency=2, cache=cache, report=report))
    assert running["max"] == 2
    assert [queries[i.id].status for i in items] == ["no_call", "malformed", "error", "ok", "ok", "ok"]
    assert (report.cached, report.generated, report.failed) == (0, 5, 1)
    assert len(cache.rows) == 6  # the failure is kept too, with its reason
    assert "server down" in cache.lookup(items[2]).detail

    calls.clear()
    again = asyncio.run(generate_queries(items, generate, concurrency=2, cache=cache))
    assert calls == [items[2].id] and again[items[3].id] == queries[items[3].id]  # only the failure is retried
    down["server"] = False
    calls.clear()
    healed = asyncio.run(generate_queries(items, generate, cache=cache))
    assert calls == [items[2].id] and healed[items[2].id].status == "ok"
    calls.clear()
    asyncio.run(generate_queries(items, generate, cache=MemoryQueryCache(options={"max_tokens": 9}, rows=cache.rows)))
    assert len(calls) == 6  # other sampling options: another prompt hash, nothing reused

    retriever = open_retriever(SHIPPED_INDEX, kiwi, cache_dir=tmp_path)
    result = score_system("model", items, queries, retriever)
    assert result.no_query_rate() == pytest.approx(3 / 6)
    assert result.status_counts() == {"ok": 3, "no_call": 1, "malformed": 1, "error": 1}
    assert all(o.first_hit is None for o in result.outcomes[:3])  # no query is a miss
    assert all(o.first_hit == 1 for o in result.outcomes[3:])
    assert baseline_query(items[0]).query == items[0].turns[-1].content


def _run_cli(argv: list[str]) -> int:
    from arena.cli import main

    return main(["recall", *argv])


def test_cli_prints_recall_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--set", str(SHIPPED_SET), "--index", str(SHIPPED_INDEX), "--cache-dir", str(tmp_path / "bm25")]
    assert _run_cli([*base, "--plot", str(tmp_path / "curve.html")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| system"))
    assert [c.strip() for c in header.strip("|").split("|")][3:] == ["R@1", "R@2", "R@4", "R@10", "MRR@10"]
    baseline = next(line for line in out.splitlines() if line.startswith("| last utterance + BM25"))
    assert len(baseline.strip("|").split("|")) == 8
    assert (tmp_path / "curve.html").stat().st_size > 0

    assert _run_cli([*base, "--format", "json", "--k", "1", "10", "--tokenizer", "whitespace"]) == 0
    data = json.loads(capsys.readouterr().out)
    first = data["systems"][0]
    assert first["system"] == "last utterance + BM25" and first["n"] == 35
    assert set(first["metrics"]) == {"R@1", "R@10", "recall@1", "recall@10", "MRR@10"}

    # An unknown model is a clear usage error, before any index work.
    assert _run_cli([*base, "--models", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err

    # No --index: the shipped items' "meta.index" hint names the documents; --items is --set; no baseline row.
    hinted = ["--items", str(SHIPPED_SET), "--cache-dir", str(tmp_path / "bm25"), "--baseline", "none"]
    assert _run_cli([*hinted, "--format", "json", "--bootstrap", "0"]) == 0
    captured = capsys.readouterr()
    assert str(SHIPPED_INDEX) in captured.err
    assert [s["system"] for s in json.loads(captured.out)["systems"]] == ["reference query + BM25"]
    lone = tmp_path / "lone.jsonl"
    lone.write_text(
        SHIPPED_SET.read_text(encoding="utf-8").splitlines()[0].replace('"index"', '"not_index"') + "\n",
        encoding="utf-8",
    )
    assert _run_cli(["--set", str(lone), "--cache-dir", str(tmp_path / "bm25")]) == 2
    assert "--index" in capsys.readouterr().err


def test_tokenize_unique_tokenizes_each_text_once() -> None:
    seen: list[str] = []

    class Counting(WhitespaceTokenizer):
        def batch(self, texts):  # type: ignore[override]
            texts = list(texts)
            seen.extend(texts)
            return super().batch(texts)

    out = tokenize_unique(Counting(), ["롱 코트", "짚업", "롱 코트"])
    assert out == [["롱", "코트"], ["짚업"], ["롱", "코트"]] and out[0] is out[2]
    assert seen == ["롱 코트", "짚업"]


def test_shipped_set_matches_generator_and_validates(tmp_path: Path) -> None:
    index_path, set_path = write_fashion_retrieval(tmp_path)
    assert index_path.read_bytes() == SHIPPED_INDEX.read_bytes()
    assert set_path.read_bytes() == SHIPPED_SET.read_bytes()
    items = load_dialogs([SHIPPED_SET])
    assert all(d.gold and d.turns[-1].role == "user" and d.category == "retrieval" for d in items)
    assert sum(d.id.startswith("synthetic-") for d in items) == 30
    ids = [json.loads(line)["id"] for line in SHIPPED_INDEX.read_text(encoding="utf-8").splitlines()]
    assert sum(i.startswith("synthetic-") for i in ids) == 300 and len(set(ids)) == len(ids)


def test_recall_curve_figure() -> None:
    from arena.retrieval.plots import recall_curve_figure

    result = SystemResult("x", [ItemOutcome("a", "q", "ok", [2]), ItemOutcome("b", None, "no_call", [None])], depth=10)
    fig = recall_curve_figure([result], n_boot=50)
    line = fig.data[1]
    assert list(line.x) == list(range(1, 11)) and list(line.y[:2]) == [0.0, 0.5]


def test_backend_adapter_collects_tool_calls() -> None:
    from arena.retrieval.recall import backend_generate
    from backends.base import Backend, Error, Finish, ToolCall

    class Scripted(Backend):
        """Answers every request with one fixed terminal event."""

        def __init__(self, final: Finish | Error) -> None:
            super().__init__("scripted")
            self.final = final
            self.seen: list[list[dict]] = []

        async def stream(self, messages, *, tools=None, options=None, cancel=None):  # type: ignore[override]
            self.seen.append(messages)
            yield self.final

    items = retrieval_items(load_dialogs([SHIPPED_SET]))[:2]
    call = ToolCall(index=0, name=TOOL_NAME, arguments=json.dumps({"text_query": "크록스 국가"}, ensure_ascii=False))
    ok = Scripted(Finish(finish_reason="tool_calls", tool_calls=[call]))
    got = asyncio.run(generate_queries(items, backend_generate(ok)))
    assert [r.query for r in got.values()] == ["크록스 국가"] * 2
    assert ok.seen[0][0]["role"] == "system" and ok.seen[0][-1] == items[0].turns[-1].to_message()

    text_only = asyncio.run(
        generate_queries(items, backend_generate(Scripted(Finish(finish_reason="stop", text="코트는..."))))
    )
    failed = asyncio.run(generate_queries(items, backend_generate(Scripted(Error(code="timeout", message="slow")))))
    assert {r.status for r in text_only.values()} == {"no_call"}
    assert {r.status for r in failed.values()} == {"error"} and "timeout" in failed[items[0].id].detail
