"""BM25 speed and memory: rank_bm25's BM25Okapi vs arena.bm25 (precomputed weights, scipy CSR) on synthetic Korean titles.

    python benchmarks/bm25_speed.py                       # 200k titles, Kiwi tokens, both engines
    python benchmarks/bm25_speed.py --docs 1470767 --tokenizer whitespace --ref-queries 0   # ours at full scale

rank_bm25 scores every document in a Python loop, so it is timed on a small query sample and its
totals are extrapolated (labelled as such). Titles are Zipf-distributed pseudo-words (Hangul
syllables) mixed with the seed's fashion words; queries are drawn from the same distribution.
Prints a markdown table; not part of `make test`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FULL_DOCS = 1_470_767  # the seed report's index size
FULL_QUERIES = 33_370  # the seed report's eval set size


def _rss() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def synthetic_titles(n: int, seed: int, vocab_size: int = 60_000) -> list[str]:
    """Korean-looking titles: 1-6 words, Zipf word frequencies, some words from the fashion seed."""
    from arena.recall_data import CATEGORIES, COLORS, DETAILS, FITS, MATERIALS, STYLES

    rng = np.random.default_rng(seed)
    syllables = np.array([chr(c) for c in range(ord("가"), ord("힣") + 1, 7)])
    lengths = rng.integers(2, 5, size=vocab_size)
    words = ["".join(rng.choice(syllables, size=k)) for k in lengths]
    fashion = COLORS + FITS + MATERIALS + DETAILS + STYLES + CATEGORIES
    words[: len(fashion)] = fashion  # the fashion words are the most frequent ones
    ranks = np.arange(1, vocab_size + 1)
    p = ranks ** -1.07
    p /= p.sum()
    sizes = rng.integers(1, 7, size=n)
    picks = rng.choice(vocab_size, size=int(sizes.sum()), p=p)
    out, pos = [], 0
    for size in sizes:
        out.append(" ".join(words[i] for i in picks[pos : pos + size]))
        pos += size
    return out


def _fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def main(argv: list[str] | None = None) -> int:
    from arena.bm25 import BM25Index, make_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=2_000, help="queries timed on our engine")
    parser.add_argument("--ref-queries", type=int, default=20, help="queries timed on rank_bm25 (0 = skip rank_bm25)")
    parser.add_argument("--tokenizer", choices=("kiwi", "whitespace"), default="kiwi")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str]] = []
    tok = make_tokenizer(args.tokenizer)
    titles = synthetic_titles(args.docs, args.seed)
    query_texts = [" ".join(t.split()[:3]) for t in synthetic_titles(args.queries, args.seed + 1)]

    t0 = time.perf_counter()
    corpus = list(tok.batch(titles))
    t_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    queries = list(tok.batch(query_texts))
    t_qtok = (time.perf_counter() - t0) / len(queries)
    rows.append((f"tokenize {args.docs:,} titles ({args.tokenizer}, shared by both)", _fmt_s(t_tok), _fmt_s(t_tok)))
    rows.append(("tokenize one query (shared)", _fmt_s(t_qtok), _fmt_s(t_qtok)))

    before = _rss()
    t0 = time.perf_counter()
    ours = BM25Index.build(corpus)
    t_build = time.perf_counter() - t0
    ours_rss = _rss() - before

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ours.save(tmp)
        disk = sum(f.stat().st_size for f in Path(tmp).iterdir())
        t0 = time.perf_counter()
        loaded = BM25Index.load(tmp, ours.stats)
        t_load = time.perf_counter() - t0
        del loaded

    t0 = time.perf_counter()
    batched = ours.search_many(queries, k=10)
    t_batch = (time.perf_counter() - t0) / len(queries)
    single_n = min(len(queries), 300)
    t0 = time.perf_counter()
    for q in queries[:single_n]:
        ours.search(q, k=10)
    t_single = (time.perf_counter() - t0) / single_n

    ref_build = ref_q = None
    ref_rss = 0
    parity = "-"
    if args.ref_queries:
        from rank_bm25 import BM25Okapi

        before = _rss()
        t0 = time.perf_counter()
        ref = BM25Okapi(corpus)
        ref_build = time.perf_counter() - t0
        ref_rss = _rss() - before
        sample = queries[: args.ref_queries]
        same = 0
        t0 = time.perf_counter()
        for q, got in zip(sample, batched):
            scores = ref.get_scores(q)
            order = np.lexsort((np.arange(len(scores)), -scores))[:10]
            top = [int(i) for i in order if scores[i] > 0]
            same += top == got.indices.tolist() and np.allclose(scores[top], got.scores, rtol=0, atol=1e-5)
        ref_q = (time.perf_counter() - t0) / len(sample)
        parity = f"{same}/{len(sample)} queries identical"

    na = "-"
    rows.append(("build index", _fmt_s(ref_build) if ref_build else na, _fmt_s(t_build)))
    rows.append(("memory kept after build (RSS growth)", f"{ref_rss / 2**20:,.0f} MiB" if ref_build else na, f"{ours_rss / 2**20:,.0f} MiB"))
    rows.append(("index arrays / on disk", na, f"{ours.nbytes() / 2**20:,.1f} MiB / {disk / 2**20:,.1f} MiB"))
    rows.append(("load cached index (mmap)", na, _fmt_s(t_load)))
    rows.append(
        (
            "search one query, top-10",
            f"{_fmt_s(ref_q)} (n={args.ref_queries})" if ref_q else na,
            f"{_fmt_s(t_single)} (n={single_n})",
        )
    )
    rows.append(("search, batched (per query)", na, f"{_fmt_s(t_batch)} (n={len(queries):,})"))
    rows.append(("top-10 + scores (1e-5) vs rank_bm25", parity, parity))

    scale = FULL_DOCS / args.docs
    label = "extrapolated" if args.docs != FULL_DOCS else "measured per query"
    est_ref = ref_q * scale * FULL_QUERIES if ref_q else None
    est_ours = t_batch * scale * FULL_QUERIES
    rows.append(
        (
            f"{FULL_DOCS:,} titles x {FULL_QUERIES:,} queries, search only ({label})",
            _fmt_s(est_ref) if est_ref else na,
            _fmt_s(est_ours),
        )
    )
    rows.append(
        (
            f"{FULL_DOCS:,} titles: tokenize + build once, then cached ({label.split()[0]})",
            _fmt_s((t_tok + ref_build) * scale) if ref_build else na,
            _fmt_s((t_tok + t_build) * scale),
        )
    )
    rows.append(
        (
            f"... plus tokenizing the {FULL_QUERIES:,} queries ({args.tokenizer})",
            _fmt_s(est_ref + t_qtok * FULL_QUERIES) if est_ref else na,
            _fmt_s(est_ours + t_qtok * FULL_QUERIES),
        )
    )

    print(f"corpus: {args.docs:,} synthetic titles, vocab {ours.stats['vocab_size']:,} terms, {ours.stats['nnz']:,} postings, "
          f"avg {ours.stats['avgdl']:.2f} terms/title")
    print()
    print("| | rank_bm25 BM25Okapi | arena.bm25 (scipy CSR) |")
    print("|---|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a} | {b} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
