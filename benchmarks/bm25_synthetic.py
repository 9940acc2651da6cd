"""Seeded synthetic Korean-like titles and queries for the BM25 benchmark (Zipfian vocabulary).

Words: half are real proper nouns from Kiwi's own dictionary (``kiwipiepy_model/default.dict``, the
kind of names an encyclopedia index is titled with), half are pseudo-words whose syllables are drawn by
their frequency in those nouns, so Kiwi meets both known and unknown words. The seed report's fashion
words take the most frequent ranks. Word frequencies follow Zipf's law; titles have 1-6 words.
A query takes 1-3 words of a random indexed title, plus one more Zipf-drawn word half of the time.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

HANGUL_NOUN = re.compile(r"[가-힣]{2,8}")


def kiwi_nouns() -> list[str]:
    """Pure-Hangul proper nouns of Kiwi's default dictionary, sorted."""
    import kiwipiepy_model

    path = Path(kiwipiepy_model.__file__).parent / "default.dict"
    nouns = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] == "NNP" and HANGUL_NOUN.fullmatch(fields[0]):
            nouns.add(fields[0])
    return sorted(nouns)


def vocabulary(size: int, seed: int) -> list[str]:
    """``size`` distinct words, most frequent first: fashion words, then real and pseudo nouns shuffled."""
    from arena.seeds.retrieval import CATEGORIES, COLORS, DETAILS, FITS, MATERIALS, STYLES

    rng = np.random.default_rng(seed)
    nouns = kiwi_nouns()
    fashion = list(dict.fromkeys(CATEGORIES + COLORS + FITS + MATERIALS + DETAILS + STYLES))
    n_real = min(len(nouns), (size - len(fashion)) // 2)
    real = [str(w) for w in rng.choice(nouns, n_real, replace=False)]
    counts = Counter(ch for w in nouns for ch in w)
    syllables = np.array(sorted(counts))
    p = np.array([counts[s] for s in syllables], dtype=float)
    p /= p.sum()
    words = list(dict.fromkeys(fashion + real))
    seen = set(words)
    while len(words) < size:
        batch = size - len(words)
        lengths = rng.integers(1, 5, size=batch)
        for n in lengths:
            word = "".join(rng.choice(syllables, size=n, p=p))
            if word not in seen:
                seen.add(word)
                words.append(word)
    head, tail = words[: len(fashion)], words[len(fashion) :]
    rng.shuffle(tail)  # real and pseudo words share the ranks
    return head + tail


def zipf_probabilities(size: int, exponent: float) -> np.ndarray:
    """P(rank r) proportional to r ** -exponent."""
    p = np.arange(1, size + 1, dtype=float) ** -exponent
    return p / p.sum()


def titles_and_queries(
    n_docs: int, n_queries: int, *, vocab_size: int = 200_000, exponent: float = 1.07, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``n_docs`` titles and ``n_queries`` queries, the same for the same arguments."""
    words = vocabulary(vocab_size, seed)
    p = zipf_probabilities(len(words), exponent)
    rng = np.random.default_rng(seed + 1)
    sizes = rng.integers(1, 7, size=n_docs)
    picks = rng.choice(len(words), size=int(sizes.sum()), p=p)
    ends = np.cumsum(sizes)
    titles = [" ".join(words[i] for i in picks[end - size : end]) for size, end in zip(sizes, ends)]

    targets = rng.integers(0, n_docs, size=n_queries)
    extra = rng.choice(len(words), size=n_queries, p=p)
    with_extra = rng.random(n_queries) < 0.5
    queries = []
    for target, word, add in zip(targets, extra, with_extra):
        title_words = titles[target].split()
        take = rng.choice(len(title_words), size=min(len(title_words), int(rng.integers(1, 4))), replace=False)
        parts = [title_words[i] for i in sorted(take)] + ([words[word]] if add else [])
        queries.append(" ".join(parts))
    return titles, queries
