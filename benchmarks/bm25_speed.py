"""BM25 at the seed's scale: arena.retrieval.bm25 vs bm25s (numba) vs rank_bm25 on the same Kiwi tokens, in one run.

    python benchmarks/bm25_speed.py                      # 1,470,767 titles, 33,370 queries, Kiwi (minutes)
    python benchmarks/bm25_speed.py --docs 200000 --queries 5000 --tokenizer whitespace   # a quick look

Titles and queries come from benchmarks/bm25_synthetic.py (seeded, Zipfian vocabulary of real and
pseudo Korean nouns). Timed in order: Kiwi tokenization of the titles (identical titles once, as
``arena.retrieval.retriever.open_retriever`` does), our index build, Kiwi tokenization of the queries, our
top-10 search of every query; their sum is the total the issue's 5-minute target is about, and the
process's peak RSS at that point the memory figure. Then bm25s (``method="atire",
idf_method="robertson"``, numba backend when installed, fed the same token lists) builds and retrieves
the same queries, and rank_bm25 scores a sample of them (its time extrapolated to all queries).
Top-10 agreement: with rank_bm25 exact ids and scores within 1e-5; with bm25s (float32) scores within
1e-4. Wall and CPU seconds are both shown: the machine is shared, and CPU time is what load cannot
inflate. Prints a markdown table; not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FULL_DOCS = 1_470_767  # the seed report's index size
FULL_QUERIES = 33_370  # the seed report's eval set size
K = 10


class Clock:
    """Wall and CPU seconds of named phases."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.wall[name], self.cpu[name] = time.perf_counter() - w0, time.process_time() - c0
        print(f"  {name}: {self.wall[name]:.1f} s wall, {self.cpu[name]:.1f} s CPU", file=sys.stderr, flush=True)
        return out

    def cell(self, name: str) -> str:
        if name not in self.wall:
            return "-"
        return f"{_fmt(self.wall[name])} ({_fmt(self.cpu[name])} CPU)"


def _fmt(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.2f} min"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.1f} ms"


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def run_bm25s(corpus: list[list[str]], queries: list[list[str]], threads: int, clock: Clock) -> tuple[Any, Any, str]:
    """bm25s on the same tokens: build, JIT warm-up, retrieve every query; (indices, scores, backend)."""
    import bm25s

    try:
        import numba  # noqa: F401

        backend = "numba"
    except ImportError:
        backend = "numpy"
    retriever = bm25s.BM25(method="atire", idf_method="robertson", backend=backend)
    clock.run("bm25s build", lambda: retriever.index(corpus, show_progress=False))
    # Queries with no indexed token are left out: bm25s's numba kernel reads past its arrays on them (a crash).
    known = [[t for t in q if t in retriever.vocab_dict and t != ""] for q in queries]
    asked = [i for i, q in enumerate(known) if q]
    clock.run(
        "bm25s warm-up",
        lambda: retriever.retrieve([known[i] for i in asked[:8]], k=K, show_progress=False, n_threads=threads),
    )
    docs, scores = clock.run(
        "bm25s search",
        lambda: retriever.retrieve([known[i] for i in asked], k=K, show_progress=False, n_threads=threads),
    )
    all_scores = np.zeros((len(queries), K), dtype=scores.dtype)
    all_scores[asked] = scores
    return docs, all_scores, backend


def main(argv: list[str] | None = None) -> int:
    from arena.retrieval.bm25 import BM25Index
    from arena.retrieval.retriever import make_tokenizer, tokenize_unique
    from benchmarks.bm25_synthetic import titles_and_queries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=FULL_DOCS)
    parser.add_argument("--queries", type=int, default=FULL_QUERIES)
    parser.add_argument("--vocab", type=int, default=200_000, help="distinct words (default: 200,000)")
    parser.add_argument("--zipf", type=float, default=1.07, help="Zipf exponent of word frequencies")
    parser.add_argument("--ref-queries", type=int, default=10, help="queries scored by rank_bm25 (0 = skip it)")
    parser.add_argument("--bm25s-threads", type=int, default=1, help="bm25s retrieve threads (ours uses one)")
    parser.add_argument("--no-bm25s", action="store_true")
    parser.add_argument("--tokenizer", choices=("kiwi", "whitespace"), default="kiwi")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    clock = Clock()
    print(f"load average at start: {load()}", file=sys.stderr)
    titles, query_texts = clock.run(
        "generate",
        lambda: titles_and_queries(args.docs, args.queries, vocab_size=args.vocab, exponent=args.zipf, seed=args.seed),
    )
    tok = make_tokenizer(args.tokenizer)
    corpus = clock.run("tokenize titles", lambda: tokenize_unique(tok, titles))
    unique_titles = len({id(t) for t in corpus})
    index = clock.run("build", lambda: BM25Index.build(corpus))
    queries = clock.run("tokenize queries", lambda: list(tok.batch(query_texts)))
    hits = clock.run("search", lambda: index.search_many(queries, K))
    ours = ("tokenize titles", "build", "tokenize queries", "search")
    total_wall, total_cpu = sum(clock.wall[p] for p in ours), sum(clock.cpu[p] for p in ours)
    peak_ours = peak_rss_gib()
    load_ours = load()

    # Exactness of the fast path against the plain sparse product on a sample.
    sample = list(range(0, len(queries), max(1, len(queries) // 2000)))
    plain = index._search_sparse([queries[i] for i in sample], K)
    same_plain = sum(
        np.array_equal(hits[i].indices, p.indices) and np.allclose(hits[i].scores, p.scores, rtol=0, atol=1e-9)
        for i, p in zip(sample, plain)
    )

    bm25s_cells = {"build": "-", "search": "-", "agree": "-", "backend": "-"}
    if not args.no_bm25s:
        try:
            docs, scores, backend = run_bm25s(corpus, queries, args.bm25s_threads, clock)
        except ImportError:
            print("bm25s is not installed: skipped", file=sys.stderr)
        else:
            agree = 0
            for got, their in zip(hits, scores):
                theirs = np.sort(their[their > 0])[::-1][: len(got.scores)]
                agree += len(theirs) == len(got.scores) and np.allclose(theirs, got.scores, rtol=0, atol=1e-4)
            bm25s_cells = {
                "build": clock.cell("bm25s build"),
                "search": clock.cell("bm25s search"),
                "agree": f"{agree:,}/{len(queries):,}",
                "backend": backend,
                "warm": clock.cell("bm25s warm-up"),
            }
    peak_all = peak_rss_gib()

    ref_cells = {"build": "-", "search": "-", "agree": "-"}
    if args.ref_queries:
        from rank_bm25 import BM25Okapi

        ref = clock.run("rank_bm25 build", lambda: BM25Okapi(corpus))
        picks = sample[: args.ref_queries]
        expected = clock.run("rank_bm25 sample", lambda: [ref.get_scores(queries[i]) for i in picks])
        agree = 0
        for i, scores in zip(picks, expected):
            order = np.lexsort((np.arange(len(scores)), -scores))[:K]
            top = [int(d) for d in order if scores[d] > 0]
            agree += top == hits[i].indices.tolist() and np.allclose(scores[top], hits[i].scores, rtol=0, atol=1e-5)
        per_query = clock.wall["rank_bm25 sample"] / len(picks)
        ref_cells = {
            "build": clock.cell("rank_bm25 build"),
            "search": f"{_fmt(per_query * len(queries))} (extrapolated from {len(picks)} queries)",
            "agree": f"{agree}/{len(picks)} identical",
        }

    n_q = len(queries)
    print(
        f"corpus: {len(titles):,} synthetic titles ({unique_titles:,} distinct), vocabulary {index.stats['vocab_size']:,} "
        f"{args.tokenizer} terms, {index.stats['nnz']:,} postings, {index.stats['avgdl']:.2f} terms a title; "
        f"{n_q:,} queries. Load average (1/5/15 min) {load_ours} after our phases, {load()} at the end; 2 cores."
    )
    print()
    print(
        f"| {args.docs:,} titles, {n_q:,} queries | arena.retrieval.bm25 | bm25s ({bm25s_cells['backend']}, "
        f"{args.bm25s_threads} thread{'s' if args.bm25s_threads > 1 else ''}) | rank_bm25 |"
    )
    print("|---|---:|---:|---:|")
    rows = [
        (
            f"tokenize titles ({args.tokenizer}; tokens shared)",
            clock.cell("tokenize titles"),
            "(same tokens)",
            "(same tokens)",
        ),
        ("build index", clock.cell("build"), bm25s_cells["build"], ref_cells["build"]),
        (
            f"tokenize {n_q:,} queries ({args.tokenizer})",
            clock.cell("tokenize queries"),
            "(same tokens)",
            "(same tokens)",
        ),
        (f"search {n_q:,} queries, top-{K}", clock.cell("search"), bm25s_cells["search"], ref_cells["search"]),
        (
            "per query",
            _fmt(clock.wall["search"] / n_q),
            _fmt(clock.wall["bm25s search"] / n_q) if "bm25s search" in clock.wall else "-",
            _fmt(clock.wall["rank_bm25 sample"] / max(1, min(len(sample), args.ref_queries)))
            if args.ref_queries
            else "-",
        ),
        ("JIT warm-up (not in search)", "-", bm25s_cells.get("warm", "-"), "-"),
        (
            "**total: tokenize + build + tokenize queries + search**",
            f"**{_fmt(total_wall)}** ({_fmt(total_cpu)} CPU)",
            "",
            "",
        ),
        ("peak RSS (process)", f"{peak_ours:.2f} GiB", f"{peak_all:.2f} GiB (ours + bm25s)", "-"),
        (
            f"top-{K} agreement with arena.retrieval.bm25",
            f"{same_plain}/{len(sample)} = sparse product",
            bm25s_cells["agree"],
            ref_cells["agree"],
        ),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
